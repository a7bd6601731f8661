// The Search panel: the best chunks for a query (words and meaning, fused, by default),
// each with its time span, its speaker where the job labelled speakers, its neighbours
// when asked, and a player: a click on a hit plays its recording (the signed media_url)
// from the hit's start; a platform item without a kept recording opens its deep_link
// (the platform's page at that moment) in a new tab.

import { describe } from "./api.js";
import { Player } from "./player.js";
import { $, clock, h, highlight, showError } from "./ui.js";

export class SearchPanel {
  constructor(getApi) {
    this.getApi = getApi;
    $("#search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    });
  }

  /** Offer the user's jobs as filters, keeping the current choice; `titles` (job id →
   *  what its files are called) names them where known. */
  setJobs(jobs, titles = this.titles) {
    this.jobs = jobs;
    this.titles = titles || new Map();
    const select = $("#search-job");
    const current = select.value;
    const options = jobs
      .filter((job) => job.status === "completed")
      .map((job) => h("option", { value: job.job_id, title: job.job_id }, this.titles.get(job.job_id) || job.job_id));
    select.replaceChildren(h("option", { value: "" }, "All jobs"), ...options);
    select.value = [...select.options].some((o) => o.value === current) ? current : "";
  }

  /** Name the jobs of the filter by their files (job id → title), as they are known. */
  setTitles(titles) {
    const merged = new Map([...(this.titles || []), ...titles]);
    if (this.jobs) this.setJobs(this.jobs, merged);
    else this.titles = merged;
  }

  clear() {
    this.titles = new Map();
    this.jobs = null;
    $("#hits").replaceChildren();
    $("#search-hint").hidden = false;
    showError($("#search-error"), null, describe);
  }

  async search() {
    const form = $("#search-form");
    const query = form.elements.query.value.trim();
    if (!query) return;
    const body = { query, top_k: Number(form.elements.top_k.value), mode: form.elements.mode.value };
    if (Number(form.elements.context.value)) body.context = Number(form.elements.context.value);
    if (form.elements.job_id.value) body.job_id = form.elements.job_id.value;
    if (form.elements.language.value) body.language = form.elements.language.value;
    const speaker = form.elements.speaker.value.trim();
    if (speaker) body.speaker = speaker;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    button.classList.add("busy");
    try {
      const answer = await this.getApi().search(body);
      showError($("#search-error"), null, describe);
      $("#search-hint").hidden = true;
      const hits = $("#hits");
      hits.replaceChildren(...answer.results.map((hit) => this.hit(hit, query)));
      if (!answer.results.length) hits.append(h("li", { class: "empty" }, "Nothing found. Index some recordings first, or try other words."));
    } catch (error) {
      showError($("#search-error"), error, describe);
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }

  hit(hit, query) {
    const shown = hit.context || hit; // with context: the passage around the hit, and its span
    const span = shown.start_s == null ? null : `${clock(shown.start_s)} – ${clock(shown.end_s)}`;
    const score = Math.max(0, Math.min(1, Number(hit.score) || 0));
    const meter = h("span", { class: "score", title: `score ${Number(hit.score).toFixed(3)}` }, h("span", { class: "score-bar" }, h("span", { class: "score-fill" })), Number(hit.score).toFixed(2));
    meter.querySelector(".score-fill").style.width = `${(score * 100).toFixed(0)}%`;
    const start = hit.start_s ?? 0;
    const error = h("div", { class: "alert", role: "alert", hidden: true });
    let player = null;
    let action = null;
    let open = null;
    // An upload's deep_link is its media_url at the moment: that one plays here instead.
    const platformLink = hit.deep_link && !(hit.media_url && hit.deep_link.startsWith(hit.media_url.split("#")[0])) ? hit.deep_link : hit.url && hit.url !== hit.media_url ? hit.url : null;
    if (hit.media_url) {
      player = new Player({ label: `Recording of ${hit.title || hit.source}` });
      player.setSource(hit.media_url);
      action = () =>
        player.playFrom(start).then(
          () => showError(error, null, describe),
          (cause) => showError(error, cause, describe),
        );
      open = h("button", { type: "button", class: "moment play-hit", onclick: (event) => { event.stopPropagation(); action(); } }, hit.start_s == null ? "▶ Play" : `▶ Play from ${clock(hit.start_s)}`);
    } else if (platformLink) {
      action = () => window.open(platformLink, "_blank", "noopener,noreferrer");
    }
    if (platformLink) {
      const label = hit.media_url ? "↗" : span ? `▶ Open at ${clock(hit.start_s)} ↗` : "Open source ↗";
      const link = h("a", { class: "moment", href: platformLink, target: "_blank", rel: "noopener noreferrer", title: "Open the source at this moment", onclick: (event) => event.stopPropagation() }, label);
      open = open ? [open, link] : link;
    }
    const missing = !hit.media_url && !platformLink && hit.start_s != null ? h("span", { class: "player-missing muted" }, "recording not kept") : null;
    const el = h(
      "li",
      { class: `hit${action ? " playable" : ""}`, dataset: { start: String(start) } },
      h(
        "div",
        { class: "hit-head" },
        meter,
        h("span", { class: "hit-source", title: hit.source }, hit.title || hit.source),
        span ? h("span", { class: "time" }, span) : null,
        hit.speaker ? h("span", { class: "hit-speaker", title: hit.speakers?.length > 1 ? `Speaking: ${hit.speakers.join(", ")}` : "Speaker" }, hit.speaker) : null,
        h("span", { class: "grow" }),
        missing,
        open,
      ),
      h("p", { class: "hit-text" }, highlight(shown.text, query)),
      player ? player.el : null,
      error,
      h("div", { class: "hit-meta muted", title: `job ${hit.job_id}` }, `${this.titles?.get(hit.job_id) || hit.job_id} · chunk ${hit.chunk_index + 1}${hit.platform ? ` · ${hit.platform}` : ""}${hit.language ? ` · ${hit.language}` : ""}`),
    );
    if (action) {
      el.title = hit.media_url ? "Play from here" : "Open the source at this moment";
      el.addEventListener("click", (event) => {
        // the player's own controls and the links act for themselves
        if (event.target.closest("audio, a, button, input, select")) return;
        if (window.getSelection?.().toString()) return; // selecting text is not a click to play
        action();
      });
    }
    return el;
  }
}

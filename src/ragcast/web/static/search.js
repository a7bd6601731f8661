// The Search panel: the best chunks for a query (words and meaning, fused, by default),
// each with its time span, its speaker where the job labelled speakers, its neighbours
// when asked, and a link to that moment in the source (the hit's deep_link, else its URL).

import { describe } from "./api.js";
import { $, clock, h, highlight, showError } from "./ui.js";

export class SearchPanel {
  constructor(getApi) {
    this.getApi = getApi;
    $("#search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    });
  }

  /** Offer the user's jobs as filters, keeping the current choice. */
  setJobs(jobs) {
    const select = $("#search-job");
    const current = select.value;
    select.replaceChildren(h("option", { value: "" }, "All jobs"), ...jobs.filter((job) => job.status === "completed").map((job) => h("option", { value: job.job_id }, job.job_id)));
    select.value = [...select.options].some((o) => o.value === current) ? current : "";
  }

  clear() {
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
    const link = hit.deep_link || hit.url;
    const shown = hit.context || hit; // with context: the passage around the hit, and its span
    const span = shown.start_s == null ? null : `${clock(shown.start_s)} – ${clock(shown.end_s)}`;
    const score = Math.max(0, Math.min(1, Number(hit.score) || 0));
    const meter = h("span", { class: "score", title: `score ${Number(hit.score).toFixed(3)}` }, h("span", { class: "score-bar" }, h("span", { class: "score-fill" })), Number(hit.score).toFixed(2));
    meter.querySelector(".score-fill").style.width = `${(score * 100).toFixed(0)}%`;
    const open = link
      ? h("a", { class: "moment", href: link, target: "_blank", rel: "noopener noreferrer" }, span ? `▶ Open at ${clock(hit.start_s)}` : "Open source ↗")
      : null;
    return h(
      "li",
      { class: "hit" },
      h(
        "div",
        { class: "hit-head" },
        meter,
        h("span", { class: "hit-source", title: hit.source }, hit.title || hit.source),
        span ? h("span", { class: "time" }, span) : null,
        hit.speaker ? h("span", { class: "hit-speaker", title: hit.speakers?.length > 1 ? `Speaking: ${hit.speakers.join(", ")}` : "Speaker" }, hit.speaker) : null,
        h("span", { class: "grow" }),
        open,
      ),
      h("p", { class: "hit-text" }, highlight(shown.text, query)),
      h("div", { class: "hit-meta muted" }, `${hit.job_id} · chunk ${hit.chunk_index + 1}${hit.platform ? ` · ${hit.platform}` : ""}${hit.language ? ` · ${hit.language}` : ""}`),
    );
  }
}

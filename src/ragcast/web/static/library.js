// The Library tab: every item of every job, named by its file or its title (not by ids),
// with its duration, language, speakers and job; a click opens its transcript and player.
// Built from the list endpoints (GET /jobs, GET /job/{id}/items, a page at a time); the
// speakers come from each item's transcript, fetched a few at a time once listed.

import { describe } from "./api.js";
import { TranscriptView } from "./transcript.js";
import { $, clock, h, showError } from "./ui.js";

const JOBS_PAGE = 200;
const ITEMS_PAGE = 1000;
/** Transcripts fetched at once for the speakers column, and at most for one listing. */
const SPEAKER_FETCHES = 3;
const SPEAKER_LIMIT = 200;
const HAS_TRANSCRIPT = new Set(["transcribed", "diarizing", "diarized", "chunking", "chunked", "embedding", "embedded", "indexing", "indexed"]);

/** A job named by its items: "talk.wav", or "talk.wav + 2 more". */
export function jobTitle(items) {
  const names = items.map((item) => item.title || item.source).filter(Boolean);
  if (!names.length) return null;
  return names.length === 1 ? names[0] : `${names[0]} + ${names.length - 1} more`;
}

export class LibraryPanel {
  /** onTitles(Map job id → title) after each load (the search filter names jobs by them). */
  constructor(getApi, onTitles) {
    this.getApi = getApi;
    this.onTitles = onTitles;
    this.generation = 0;
    this.rows = [];
    this.speakerCache = new Map(); // row key → speakers of its transcript, fetched once
    $("#library-refresh").addEventListener("click", () => this.load({ fresh: true }));
    $("#library-filter").addEventListener("input", () => this.filter());
  }

  clear() {
    this.generation += 1;
    this.rows = [];
    this.speakerCache.clear();
    $("#library-rows").replaceChildren();
    $("#library-count").textContent = "";
    $("#library-empty").hidden = true;
    showError($("#library-error"), null, describe);
  }

  /** Every job (newest first), then each job's items in order; `fresh` fetches the
   *  speakers again too (they are kept between loads otherwise). */
  async load({ fresh = false } = {}) {
    if (fresh) this.speakerCache.clear();
    const generation = ++this.generation;
    const api = this.getApi();
    if (!api) return;
    const button = $("#library-refresh");
    button.classList.add("busy");
    try {
      const jobs = [];
      for (let offset = 0; ; offset += JOBS_PAGE) {
        const page = await api.jobs(JOBS_PAGE, offset);
        jobs.push(...page.jobs);
        if (!page.jobs.length || jobs.length >= page.total) break;
      }
      const perJob = await Promise.all(
        jobs.map(async (job) => {
          const items = [];
          let after = null;
          do {
            const page = await api.items(job.job_id, { limit: ITEMS_PAGE, after });
            items.push(...page.items);
            after = page.next_after;
          } while (after != null);
          return { job, items };
        }),
      );
      if (generation !== this.generation) return;
      const titles = new Map(perJob.map(({ job, items }) => [job.job_id, jobTitle(items) || job.job_id]));
      this.render(perJob, titles);
      showError($("#library-error"), null, describe);
      this.onTitles?.(titles);
      this.fetchSpeakers(generation);
    } catch (error) {
      if (generation === this.generation) showError($("#library-error"), error, describe);
    } finally {
      if (generation === this.generation) button.classList.remove("busy");
    }
  }

  render(perJob, titles) {
    const body = $("#library-rows");
    const open = new Set(this.rows.filter((row) => row.transcriptRow && !row.transcriptRow.hidden).map((row) => row.key));
    this.rows = [];
    body.replaceChildren();
    for (const { job, items } of perJob) {
      for (const item of items) {
        const row = this.row(job, item, titles.get(job.job_id));
        this.rows.push(row);
        body.append(row.tr);
        if (open.has(row.key)) this.toggle(row);
      }
    }
    $("#library-count").textContent = this.rows.length ? String(this.rows.length) : "";
    this.filter();
  }

  row(job, item, jobName) {
    const title = item.title || item.source || item.content_id;
    const readable = item.status === "completed" || HAS_TRANSCRIPT.has(item.stage);
    const speakers = h("td", { class: "library-speakers muted" }, item.status === "completed" ? "" : "–");
    const state = item.status === "completed" ? null : h("span", { class: "badge", dataset: { status: item.status } }, item.status);
    const row = {
      key: `${job.job_id}\u0000${item.index}`,
      job,
      item,
      title,
      speakers,
      tr: null,
      transcriptRow: null,
      transcript: null,
      button: null,
    };
    row.button = readable
      ? h("button", { type: "button", class: "library-title", "aria-expanded": "false", title: `Open the transcript of ${title}`, onclick: () => this.toggle(row) }, title)
      : h("span", { class: "library-title", title }, title);
    row.tr = h(
      "tr",
      { class: "library-item", dataset: { jobId: job.job_id, index: String(item.index), status: item.status } },
      h("td", { class: "library-name" }, row.button, state),
      h("td", { class: "num" }, item.duration_s != null ? clock(item.duration_s) : "–"),
      h("td", { class: "library-language" }, item.language || "–"),
      speakers,
      h("td", { class: "library-job", title: `job ${job.job_id}` }, jobName || job.job_id),
    );
    return row;
  }

  /** Show the rows whose title or job matches the filter. */
  filter() {
    const words = $("#library-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of this.rows) {
      const haystack = `${row.title} ${row.tr.querySelector(".library-job").textContent} ${row.item.language || ""} ${row.speakers.textContent}`.toLowerCase();
      const match = words.every((word) => haystack.includes(word));
      row.tr.hidden = !match;
      if (row.transcriptRow) row.transcriptRow.hidden = !match || row.transcriptRow.dataset.closed === "true";
      if (match) shown += 1;
    }
    const empty = $("#library-empty");
    empty.hidden = shown > 0;
    empty.textContent = this.rows.length ? "No item matches the filter." : "Nothing here yet. Items appear once a job has fetched them.";
  }

  /** Open (loading it afresh) or close an item's transcript, under its row. */
  toggle(row) {
    const open = !row.transcriptRow || row.transcriptRow.hidden;
    if (open && !row.transcript) {
      row.transcript = new TranscriptView(this.getApi, row.job.job_id, row.item.index, { url: row.item.url });
      row.transcriptRow = h("tr", { class: "transcript-row" }, h("td", { colspan: 5 }, row.transcript.el));
      row.tr.after(row.transcriptRow);
    }
    row.transcriptRow.hidden = !open;
    row.transcriptRow.dataset.closed = String(!open);
    row.button.setAttribute("aria-expanded", String(open));
    row.button.classList.toggle("active", open);
    if (open) {
      row.transcript.load().then(() => {
        if (row.transcript.data) this.showSpeakers(row, row.transcript.data.speakers || []);
      });
    }
  }

  showSpeakers(row, speakers) {
    this.speakerCache.set(row.key, speakers);
    const names = speakers.map((speaker) => speaker.name || speaker.label);
    row.speakers.textContent = names.length ? names.join(", ") : "–";
    row.speakers.title = names.length ? `${names.length} speaker${names.length === 1 ? "" : "s"}` : "not diarized";
  }

  /** Fill the speakers column from the items' transcripts, a few at a time. */
  async fetchSpeakers(generation) {
    for (const row of this.rows) {
      const known = this.speakerCache.get(row.key);
      if (known) this.showSpeakers(row, known);
    }
    const queue = this.rows.filter((row) => row.item.status === "completed" && !this.speakerCache.has(row.key)).slice(0, SPEAKER_LIMIT);
    const worker = async () => {
      while (queue.length && generation === this.generation) {
        const row = queue.shift();
        try {
          const transcript = await this.getApi().transcript(row.job.job_id, row.item.index);
          if (generation === this.generation) this.showSpeakers(row, transcript.speakers || []);
        } catch {
          row.speakers.textContent = "–";
        }
      }
    };
    await Promise.all(Array.from({ length: SPEAKER_FETCHES }, worker));
  }
}

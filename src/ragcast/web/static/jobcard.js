// One job in the Jobs panel: live progress from its WebSocket (or polling), each item's
// pipeline stage and transcript, cancel, and exports that are downloaded when ready.

import { describe } from "./api.js";
import { TranscriptView } from "./transcript.js";
import { ago, bytes, h, percent, progressBar, toast } from "./ui.js";

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const STEPS = [
  ["fetched", "Fetch", "fetching"],
  ["transcribed", "Transcribe", "transcribing"],
  ["chunked", "Chunk", "chunking"],
  ["embedded", "Embed", "embedding"],
  ["indexed", "Index", "indexing"],
];
const FORMATS = [
  ["json", "JSON"],
  ["csv", "CSV"],
  ["parquet", "Parquet"],
  ["vector", "Vector"],
];
/** Labelling speakers belongs to the Transcribe step on screen. */
const ALIASES = { diarized: "transcribed", diarizing: "transcribing" };
/** Stages (finished or under way) at which an item has its transcript. */
const HAS_TRANSCRIPT = new Set(["transcribed", "diarizing", "diarized", "chunking", "chunked", "embedding", "embedded", "indexing", "indexed"]);
const POLL_MS = 4000;
/** Items loaded at a time when a job is opened, and by each "more items". */
const ITEMS_PAGE = 100;
const EXPORT_POLL_MS = 600;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** How many steps an item has finished, and which one it is on (or -1). */
function stepState(item) {
  if (item.status === "completed") return { done: STEPS.length, active: -1 };
  const stage = ALIASES[item.stage] || item.stage;
  let done = STEPS.findIndex(([finished]) => finished === stage) + 1;
  let active = STEPS.findIndex(([, , working]) => working === stage);
  if (active >= 0) done = active;
  else if (item.status === "processing") active = done < STEPS.length ? done : -1;
  return { done, active };
}

export class JobCard {
  /** onTitle(jobId, title) once the job is named by its files. */
  constructor(getApi, summary, { expanded = false, onTitle = null } = {}) {
    this.getApi = getApi;
    this.onTitle = onTitle;
    this.jobId = summary.job_id;
    this.state = { ...summary };
    this.socket = null;
    this.following = false;
    this.pollTimer = null;
    this.itemRows = new Map();
    this.nextAfter = null;
    this.itemsLoaded = false;
    this.build(expanded);
    this.render();
    if (!expanded) this.loadTitle();
  }

  /** Name the job by its files: "talk.wav", "talk.wav + 2 more". */
  setTitle(first, total) {
    const name = first && (first.title || first.source);
    if (!name) return;
    const title = total > 1 ? `${name} + ${total - 1} more` : name;
    if (title !== this.titleEl.textContent) this.onTitle?.(this.jobId, title);
    this.titleEl.textContent = title;
    this.titleEl.title = this.titleEl.textContent;
    this.titleEl.hidden = false;
    this.el.classList.add("titled");
  }

  /** The first item (for the title) of a job shown folded. */
  async loadTitle() {
    try {
      const page = await this.getApi().items(this.jobId, { limit: 1 });
      this.setTitle(page.items[0], page.total);
    } catch {
      /* the card keeps its id */
    }
  }

  build(expanded) {
    this.bar = progressBar(`Progress of ${this.jobId}`);
    this.badge = h("span", { class: "badge" });
    this.pct = h("span", { class: "pct" });
    this.stage = h("span", { class: "stage" });
    this.stats = h("span", { class: "stats muted" });
    this.when = h("span", { class: "muted when" });
    this.titleEl = h("span", { class: "job-title", hidden: true });
    this.cancelButton = h("button", { type: "button", class: "btn btn-small btn-danger-quiet", onclick: () => this.cancel() }, "Cancel");
    this.toggleButton = h("button", { type: "button", class: "job-toggle", "aria-expanded": "false", onclick: () => this.setExpanded(this.detail.hidden) }, h("span", { class: "chev", "aria-hidden": "true" }, "›"), this.titleEl, h("span", { class: "job-id" }, this.jobId));
    this.itemsBody = h("tbody");
    this.exportList = h("ul", { class: "export-list" });
    this.exportBar = h(
      "div",
      { class: "exports", hidden: true },
      h("span", { class: "exports-label" }, "Export"),
      FORMATS.map(([fmt, label]) => h("button", { type: "button", class: "btn btn-small fmt", dataset: { format: fmt }, onclick: () => this.exportAs(fmt) }, label)),
    );
    this.moreItemsButton = h("button", { type: "button", class: "btn btn-small more-items", hidden: true, onclick: () => this.loadItems(this.nextAfter) }, "More items");
    this.detail = h(
      "div",
      { class: "job-detail", hidden: true },
      h("table", { class: "items" }, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Item"), h("th", {}, "Pipeline"), h("th", { class: "num" }, "Chunks"))), this.itemsBody),
      this.moreItemsButton,
    );
    this.el = h(
      "li",
      { class: "job", dataset: { jobId: this.jobId } },
      h("div", { class: "job-head" }, this.toggleButton, this.badge, this.when, h("span", { class: "grow" }), this.cancelButton),
      h("div", { class: "job-progress" }, this.bar.el, this.pct),
      h("div", { class: "job-line" }, this.stage, this.stats),
      this.exportBar,
      this.exportList,
      this.detail,
    );
    if (expanded) this.setExpanded(true);
  }

  get terminal() {
    return TERMINAL.has(this.state.status);
  }

  render() {
    const s = this.state;
    const done = s.status === "completed";
    this.el.dataset.status = s.status;
    this.badge.textContent = s.status;
    this.badge.dataset.status = s.status;
    const progress = done ? 100 : Number(s.progress) || 0;
    this.bar.set(progress / 100, TERMINAL.has(s.status) ? s.status : "running");
    this.pct.textContent = percent(progress);
    this.stage.textContent = s.status === "failed" || s.status === "cancelled" ? s.error || s.stage || s.status : s.stage || "";
    const parts = [];
    if (s.total_content != null) parts.push(`${s.content_processed ?? 0}/${plural(s.total_content, "item")}`);
    parts.push(plural(s.embeddings ?? 0, "embedding"));
    if (s.result?.failed_items) parts.push(`${s.result.failed_items} failed`);
    if (s.result?.processing_time != null) parts.push(`${Number(s.result.processing_time).toFixed(1)} s`);
    this.stats.textContent = parts.join(" · ");
    const meta = [s.embedding_model, s.vector_db, s.created_at ? ago(s.created_at) : null].filter(Boolean);
    this.when.textContent = meta.join(" · ");
    this.cancelButton.hidden = this.terminal;
    this.exportBar.hidden = !done;
  }

  /** Merge a status body, a list summary or a WebSocket message into the state. */
  update(data) {
    const next = { ...this.state, ...data };
    if (data.contentProcessed != null) next.content_processed = data.contentProcessed;
    if (data.type === "completed") next.status = "completed";
    if (data.type === "error") {
      next.status = data.status && TERMINAL.has(data.status) ? data.status : "failed";
      next.error = data.message;
    }
    // Progress never goes backwards on screen, whatever order messages arrive in.
    next.progress = Math.max(Number(this.state.progress) || 0, Number(next.progress) || 0);
    delete next.type;
    delete next.item;
    this.state = next;
    if (data.item) this.updateItem(data.item);
    this.render();
  }

  setExpanded(open) {
    this.detail.hidden = !open;
    this.toggleButton.setAttribute("aria-expanded", String(open));
    this.el.classList.toggle("open", open);
    if (open) this.loadItems(null);
  }

  /** Load a page of items: the first (after = null) or the one after item `after`. */
  async loadItems(after) {
    this.moreItemsButton.disabled = true;
    try {
      const page = await this.getApi().items(this.jobId, { limit: ITEMS_PAGE, after });
      page.items.forEach((item) => this.updateItem(item));
      if (after == null) this.setTitle(page.items[0], page.total);
      // Opening the job again refreshes the first page; the pages loaded after it stay.
      if (after != null || !this.itemsLoaded) this.nextAfter = page.next_after;
      this.itemsLoaded = true;
      const left = page.total - page.offset - page.items.length;
      this.moreItemsButton.hidden = this.nextAfter == null;
      this.moreItemsButton.textContent = left > 0 ? `More items (${left} left)` : "More items";
    } catch (error) {
      this.stage.textContent = describe(error);
    } finally {
      this.moreItemsButton.disabled = false;
    }
  }

  updateItem(item) {
    let row = this.itemRows.get(item.index);
    if (!row) {
      const steps = STEPS.map(([, label]) => h("li", { class: "step" }, label));
      row = {
        tr: h("tr", {}),
        name: h("span", { class: "item-name" }),
        language: h("span", { class: "item-language muted" }),
        steps,
        chunks: h("td", { class: "num" }),
        error: h("div", { class: "item-error", hidden: true }),
        warnings: h("div", { class: "item-warning", hidden: true }),
        transcriptButton: h("button", { type: "button", class: "btn btn-small transcript-toggle", hidden: true, "aria-expanded": "false", onclick: () => this.toggleTranscript(item.index) }, "Transcript"),
        transcriptRow: null,
        transcript: null,
        url: item.url,
      };
      row.tr.append(h("td", { class: "muted" }, String(item.index + 1)), h("td", {}, row.name, row.language, row.error, row.warnings, row.transcriptButton), h("td", {}, h("ol", { class: "steps" }, steps)), row.chunks);
      this.itemRows.set(item.index, row);
      const after = [...this.itemRows.keys()].filter((i) => i > item.index).sort((a, b) => a - b)[0];
      this.itemsBody.insertBefore(row.tr, after === undefined ? null : this.itemRows.get(after).tr);
    }
    const name = item.title || item.source || item.content_id;
    row.name.textContent = name;
    row.name.title = name;
    row.tr.dataset.status = item.status;
    const { done, active } = stepState(item);
    row.steps.forEach((step, i) => {
      step.className = `step${i < done ? " done" : ""}${i === active ? " active" : ""}${item.status === "failed" && i === done ? " failed" : ""}`;
    });
    if (item.chunks != null) row.chunks.textContent = String(item.chunks);
    row.error.hidden = !item.error;
    row.error.textContent = item.error || "";
    const warnings = item.warnings || [];
    row.warnings.hidden = !warnings.length;
    row.warnings.textContent = warnings.join(" · ");
    row.language.hidden = !item.language;
    row.language.textContent = item.language ? ` ${item.language}` : "";
    row.language.title = item.language_probability == null ? "language named by the job" : `detected with probability ${item.language_probability.toFixed(2)}`;
    if (item.status === "completed" || HAS_TRANSCRIPT.has(item.stage)) row.transcriptButton.hidden = false;
  }

  /** Show (loading it afresh) or hide an item's transcript, in a row under the item's. */
  toggleTranscript(index) {
    const row = this.itemRows.get(index);
    if (!row) return;
    const open = !row.transcriptRow || row.transcriptRow.hidden;
    if (open && !row.transcript) {
      row.transcript = new TranscriptView(this.getApi, this.jobId, index, { url: row.url });
      row.transcriptRow = h("tr", { class: "transcript-row" }, h("td", { colspan: 4 }, row.transcript.el));
      row.tr.after(row.transcriptRow);
    }
    row.transcriptRow.hidden = !open;
    row.transcriptButton.setAttribute("aria-expanded", String(open));
    row.transcriptButton.classList.toggle("active", open);
    if (open) row.transcript.load();
  }

  /** Follow the job live: its WebSocket (ticketed URL), or polling where that fails. */
  async follow(websocketUrl) {
    if (this.terminal || this.following) return;
    this.following = true;
    try {
      const url = websocketUrl || (await this.getApi().ticket(this.jobId)).websocket_url;
      const socket = new WebSocket(url);
      this.socket = socket;
      let finished = false;
      socket.onmessage = (message) => {
        const event = JSON.parse(message.data);
        this.update(event);
        if (event.type === "completed" || event.type === "error") {
          finished = true;
          this.finish();
        }
      };
      socket.onclose = () => {
        this.socket = null;
        if (!finished) this.poll();
      };
    } catch {
      this.poll();
    }
  }

  poll() {
    if (this.pollTimer || this.terminal) return;
    this.pollTimer = setInterval(async () => {
      try {
        this.update(await this.getApi().status(this.jobId));
        if (!this.detail.hidden) await this.loadItems(null);
        if (this.terminal) this.finish();
      } catch {
        /* a passing failure: the next tick tries again */
      }
    }, POLL_MS);
  }

  async finish() {
    this.stop();
    try {
      this.update(await this.getApi().status(this.jobId));
      await this.loadItems(null);
    } catch {
      /* the card keeps what the socket said */
    }
  }

  stop() {
    this.following = false;
    clearInterval(this.pollTimer);
    this.pollTimer = null;
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close();
      this.socket = null;
    }
  }

  async cancel() {
    const button = this.cancelButton;
    if (!button.classList.contains("confirm")) {
      button.classList.add("confirm");
      button.textContent = "Confirm cancel";
      setTimeout(() => {
        button.classList.remove("confirm");
        button.textContent = "Cancel";
      }, 3000);
      return;
    }
    button.disabled = true;
    try {
      this.update(await this.getApi().cancel(this.jobId));
      toast(`Job ${this.jobId} cancelled`);
    } catch (error) {
      toast(describe(error), "error");
    } finally {
      button.disabled = false;
    }
  }

  /** Start an export, follow it, then download the file through the API key. */
  async exportAs(format) {
    const bar = progressBar(`${format} export of ${this.jobId}`);
    const label = h("span", { class: "export-state" }, "Starting…");
    const row = h("li", { class: "export", dataset: { format } }, h("span", { class: "export-format" }, format), bar.el, label);
    this.exportList.prepend(row);
    try {
      const api = this.getApi();
      const { export_id: exportId } = await api.startExport(this.jobId, format);
      let state;
      while ((state = await api.exportStatus(exportId)).status !== "completed") {
        if (state.status === "failed") throw new Error(state.error || "the export failed");
        bar.set((state.progress || 0) / 200);
        label.textContent = `Exporting ${percent(state.progress)}`;
        await sleep(EXPORT_POLL_MS);
      }
      label.textContent = "Downloading…";
      const blob = await api.download(exportId, (received, total) => {
        bar.set(0.5 + (total ? received / total : 0) / 2);
        label.textContent = `Downloading ${bytes(received)}`;
      });
      bar.set(1, "completed");
      const href = URL.createObjectURL(blob);
      const link = h("a", { href, download: state.filename || `${exportId}.${format}`, class: "download-link" }, `${state.filename} · ${bytes(blob.size)}`);
      label.replaceChildren(link);
      link.click();
    } catch (error) {
      bar.set(1, "failed");
      label.textContent = describe(error);
      label.classList.add("bad");
    }
  }
}

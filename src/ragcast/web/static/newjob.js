// The "New job" panel: platform and input method, uploads with progress, channel preview
// with checkboxes for selected_content, embedding, chunk and speaker settings, then
// POST /process.

import { describe } from "./api.js";
import { $, $$, bytes, clock, h, progressBar, showError, toast } from "./ui.js";

const MODEL_LABELS = { local: "Local", "jina-v4": "Jina Embedder v4", "gemini-exp": "Gemini Embedding" };
const DB_LABELS = { chroma: "Chroma", qdrant: "Qdrant", pinecone: "Pinecone", pgvector: "pgvector" };
const MAX_SPEAKERS = 32;

export class NewJobPanel {
  /** getApi() → the current Api; onStarted(accepted) when a job was accepted. */
  constructor(getApi, onStarted) {
    this.getApi = getApi;
    this.onStarted = onStarted;
    this.form = $("#job-form");
    this.uploads = []; // {file, row, bar, state: uploading|done|failed, documentId}
    this.preview = { url: null, page: 1, selected: new Set() };
    this.bind();
    this.syncMethod();
  }

  bind() {
    $("#platform").addEventListener("change", () => this.syncMethod());
    $$("input[name=input_method]").forEach((radio) => radio.addEventListener("change", () => this.syncMethod()));
    $("#embedding").addEventListener("change", () => {
      $("#jina-options").hidden = $("#embedding").value !== "jina-v4";
    });
    $("#diarize").addEventListener("change", () => {
      $("#speaker-counts").hidden = !$("#diarize").checked;
    });
    const input = $("#file-input");
    input.addEventListener("change", () => {
      this.addFiles([...input.files]);
      input.value = "";
    });
    const zone = $("#dropzone");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      this.addFiles([...event.dataTransfer.files]);
    });
    $("#preview-button").addEventListener("click", () => this.loadPreview(true));
    $("#preview-more").addEventListener("click", () => this.loadPreview(false));
    $("#select-all").addEventListener("change", (event) => {
      $$("#preview-list input[type=checkbox]").forEach((box) => {
        box.checked = event.target.checked;
        this.toggle(box.value, box.checked);
      });
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  method() {
    return $("input[name=input_method]:checked").value;
  }

  /** Files take uploads only; platforms take all three ways in. */
  syncMethod() {
    const documents = $("#platform").value === "documents";
    $$("input[name=input_method]").forEach((radio) => {
      radio.disabled = documents && radio.value !== "upload";
    });
    if (documents && this.method() !== "upload") $("input[name=input_method][value=upload]").checked = true;
    const method = this.method();
    $$(".method").forEach((section) => {
      section.hidden = section.dataset.method !== method;
    });
  }

  addFiles(files) {
    for (const file of files) {
      const bar = progressBar(`Upload of ${file.name}`);
      const state = h("span", { class: "upload-state" }, "0%");
      const entry = { file, bar, state: "uploading", documentId: null };
      const remove = h("button", { type: "button", class: "icon-btn", title: "Remove", "aria-label": `Remove ${file.name}`, onclick: () => this.removeUpload(entry) }, "×");
      entry.row = h(
        "li",
        { class: "upload" },
        h("div", { class: "upload-line" }, h("span", { class: "upload-name", title: file.name }, file.name), h("span", { class: "muted" }, bytes(file.size)), state, remove),
        bar.el,
      );
      entry.label = state;
      this.uploads.push(entry);
      $("#upload-list").append(entry.row);
      this.startUpload(entry);
    }
  }

  async startUpload(entry) {
    try {
      const body = await this.getApi().upload(entry.file, (done, total) => {
        entry.bar.set(total ? done / total : 0);
        entry.label.textContent = total ? `${Math.floor((100 * done) / total)}%` : bytes(done);
      });
      entry.documentId = body.document_id;
      entry.state = "done";
      entry.bar.set(1, "done");
      entry.label.textContent = "Uploaded";
      entry.label.className = "upload-state ok";
    } catch (error) {
      entry.state = "failed";
      entry.bar.set(1, "failed");
      entry.label.textContent = "Failed";
      entry.label.className = "upload-state bad";
      entry.row.append(h("div", { class: "upload-error" }, describe(error)));
    }
  }

  removeUpload(entry) {
    this.uploads = this.uploads.filter((e) => e !== entry);
    entry.row.remove();
  }

  toggle(id, on) {
    if (on) this.preview.selected.add(id);
    else this.preview.selected.delete(id);
    this.countSelected();
  }

  countSelected() {
    const shown = $$("#preview-list input[type=checkbox]").length;
    $("#preview-count").textContent = `${this.preview.selected.size} of ${shown} selected`;
    $("#select-all").checked = shown > 0 && this.preview.selected.size === shown;
  }

  async loadPreview(fresh) {
    const url = $("#channel-url").value.trim();
    const box = $("#preview-error");
    if (!url) {
      showError(box, new Error("Enter a channel URL first."), describe);
      return;
    }
    if (fresh) this.preview = { url, page: 1, selected: new Set() };
    const button = fresh ? $("#preview-button") : $("#preview-more");
    button.disabled = true;
    button.classList.add("busy");
    try {
      const page = await this.getApi().preview(this.preview.url, this.preview.page, 50);
      showError(box, null, describe);
      if (fresh) $("#preview-list").replaceChildren();
      $("#preview").hidden = false;
      $("#preview-title").textContent = page.title || page.url || url;
      for (const item of page.items || []) $("#preview-list").append(this.previewRow(item));
      this.preview.page = (page.page || this.preview.page) + 1;
      $("#preview-more").hidden = !page.has_more;
      this.countSelected();
    } catch (error) {
      showError(box, error, describe);
      if (fresh) $("#preview").hidden = true;
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }

  previewRow(item) {
    const box = h("input", { type: "checkbox", value: item.id, checked: true });
    this.preview.selected.add(item.id);
    box.addEventListener("change", () => this.toggle(item.id, box.checked));
    const thumb = item.thumbnail ? h("img", { src: item.thumbnail, alt: "", loading: "lazy", referrerpolicy: "no-referrer" }) : h("span", { class: "thumb-empty" });
    const date = /^\d{8}$/.test(item.upload_date || "") ? item.upload_date.replace(/(\d{4})(\d\d)(\d\d)/, "$1-$2-$3") : item.upload_date;
    const meta = [item.duration != null ? clock(item.duration) : null, date || null].filter(Boolean).join(" · ");
    return h("li", {}, h("label", { class: "preview-item" }, box, h("span", { class: "thumb" }, thumb), h("span", { class: "preview-text" }, h("span", { class: "preview-name" }, item.title || item.id), h("span", { class: "muted" }, meta))));
  }

  numberField(name) {
    return Number(this.form.elements[name].value);
  }

  /** settings.diarize, and min/max_speakers where filled; {} without diarize. */
  speakerSettings() {
    if (!$("#diarize").checked) return {};
    const out = { diarize: true };
    for (const [name, label] of [
      ["min_speakers", "Min speakers"],
      ["max_speakers", "Max speakers"],
    ]) {
      const text = this.form.elements[name].value.trim();
      if (!text) continue;
      const value = Number(text);
      if (!Number.isInteger(value) || value < 1 || value > MAX_SPEAKERS) throw new Error(`${label} is a whole number from 1 to ${MAX_SPEAKERS}.`);
      out[name] = value;
    }
    if (out.min_speakers && out.max_speakers && out.min_speakers > out.max_speakers) throw new Error("Min speakers is more than max speakers.");
    return out;
  }

  embeddingModel() {
    const id = $("#embedding").value;
    const model = { id, label: MODEL_LABELS[id] };
    if (id === "jina-v4") {
      const f = this.form.elements;
      const dims = Number(f.jina_v4_dimensions.value);
      Object.assign(model, {
        dimensions: dims,
        max_tokens: 8192,
        jina_v4_task: f.jina_v4_task.value,
        jina_v4_dimensions: dims,
        jina_v4_late_chunking: f.jina_v4_late_chunking.checked,
        jina_v4_multi_vector: f.jina_v4_multi_vector.checked,
        jina_v4_optimize_for_rag: f.jina_v4_optimize_for_rag.checked,
        jina_v4_truncate_at_max: f.jina_v4_truncate_at_max.checked,
      });
    }
    return model;
  }

  /** The contract's POST /process body, or an Error saying what is missing. */
  body() {
    const method = this.method();
    const uploads = this.uploads.filter((e) => e.state === "done").map((e) => e.documentId);
    if (method === "upload") {
      if (this.uploads.some((e) => e.state === "uploading")) throw new Error("Wait for the uploads to finish.");
      if (!uploads.length) throw new Error("Add at least one file to process.");
    }
    const pasted = $("#pasted-urls").value.split(/\s+/).filter(Boolean);
    if (method === "urls" && !pasted.length) throw new Error("Paste at least one link.");
    const channel = $("#channel-url").value.trim();
    if (method === "channel" && !channel) throw new Error("Enter a channel URL.");
    const db = $("#vector-db").value;
    return {
      job_id: this.form.elements.job_id.value.trim() || `bulk-${Date.now()}`,
      platform: $("#platform").value,
      input_method: method,
      ...(method === "channel" ? { channel_url: channel } : {}),
      pasted_urls: method === "urls" ? pasted : [],
      selected_content: method === "channel" ? [...this.preview.selected] : [],
      uploaded_documents: method === "upload" ? uploads : [],
      embedding_model: this.embeddingModel(),
      vector_db: { id: db, label: DB_LABELS[db] },
      settings: {
        chunkSize: this.numberField("chunkSize"),
        chunkOverlap: this.numberField("chunkOverlap"),
        maxTokens: this.numberField("maxTokens"),
        language: $("#job-language").value || "auto",
        ...this.speakerSettings(),
      },
    };
  }

  async submit() {
    const box = $("#job-error");
    const button = $("#start-job");
    let body;
    try {
      body = this.body();
    } catch (error) {
      showError(box, error, describe);
      return;
    }
    button.disabled = true;
    button.classList.add("busy");
    try {
      const accepted = await this.getApi().process(body);
      showError(box, null, describe);
      toast(`Job ${accepted.job_id} started (estimated: ${accepted.estimated_time})`, "ok");
      this.uploads.forEach((e) => e.row.remove());
      this.uploads = [];
      this.form.elements.job_id.value = "";
      this.onStarted(accepted);
    } catch (error) {
      showError(box, error, describe);
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }
}

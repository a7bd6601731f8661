// An item's transcript under its row in a job card: speaker turns (consecutive segments
// of one speaker in one block, a colour per speaker), names for the speakers' labels,
// and the srt / vtt / txt files, fetched with the API key.

import { describe } from "./api.js";
import { clock, h, showError, toast } from "./ui.js";

const FORMATS = [
  ["srt", "SRT"],
  ["vtt", "VTT"],
  ["txt", "TXT"],
];
/** How many speaker colours style.css defines (.turn[data-color="0"] ...). */
const COLORS = 8;
const NAME_MAX = 64;

/** Consecutive segments of one speaker as turns: {speaker, start, texts}. */
export function turns(segments) {
  const out = [];
  for (const segment of segments) {
    const text = (segment.text || "").trim();
    if (!text) continue;
    const speaker = segment.speaker ?? null;
    const last = out.at(-1);
    if (last && last.speaker === speaker) {
      last.texts.push(text);
      if (last.start == null) last.start = segment.start;
    } else {
      out.push({ speaker, start: segment.start, texts: [text] });
    }
  }
  return out;
}

export class TranscriptView {
  /** getApi() → the current Api; the transcript of item `index` of job `jobId`. */
  constructor(getApi, jobId, index) {
    this.getApi = getApi;
    this.jobId = jobId;
    this.index = index;
    this.data = null;
    this.error = h("div", { class: "alert", role: "alert", hidden: true });
    this.meta = h("span", { class: "muted transcript-meta" });
    this.names = h("form", { class: "speaker-names", hidden: true, novalidate: true, onsubmit: (event) => this.saveNames(event) });
    this.body = h("div", { class: "transcript-body", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading the transcript…"));
    this.el = h(
      "div",
      { class: "transcript", dataset: { index: String(index) } },
      h(
        "div",
        { class: "transcript-head" },
        h("strong", {}, "Transcript"),
        this.meta,
        h("span", { class: "grow" }),
        h("span", { class: "exports-label" }, "Download"),
        FORMATS.map(([fmt, label]) => h("button", { type: "button", class: "btn btn-small fmt", dataset: { format: fmt }, onclick: (event) => this.download(fmt, event.currentTarget) }, label)),
      ),
      this.error,
      this.names,
      this.body,
    );
  }

  async load() {
    try {
      this.data = await this.getApi().transcript(this.jobId, this.index);
      showError(this.error, null, describe);
      this.render();
    } catch (error) {
      this.body.replaceChildren();
      showError(this.error, error, describe);
    }
  }

  /** label → colour number, and what a segment's speaker (a name, or a label) is labelled. */
  speakerIndex() {
    const color = new Map();
    const labelOf = new Map();
    (this.data.speakers || []).forEach((speaker, i) => {
      color.set(speaker.label, i % COLORS);
      if (!labelOf.has(speaker.name)) labelOf.set(speaker.name, speaker.label);
    });
    (this.data.speakers || []).forEach((speaker) => {
      if (!labelOf.has(speaker.label)) labelOf.set(speaker.label, speaker.label);
    });
    return { color, labelOf };
  }

  render() {
    const data = this.data;
    const speakers = data.speakers || [];
    const meta = [data.source, data.language, data.duration_s != null ? clock(data.duration_s) : null, speakers.length ? `${speakers.length} speaker${speakers.length === 1 ? "" : "s"}` : null];
    this.meta.textContent = meta.filter(Boolean).join(" · ");
    this.renderNames(speakers);
    const segments = data.segments || [];
    if (!segments.some((segment) => (segment.text || "").trim())) {
      this.body.replaceChildren(h("p", { class: "muted" }, "This transcript is empty."));
      return;
    }
    if (!speakers.length) {
      // Not diarized: the segments as they are, each with its time.
      this.body.replaceChildren(
        ...segments
          .filter((segment) => (segment.text || "").trim())
          .map((segment) => h("p", { class: "segment" }, h("span", { class: "time" }, clock(segment.start)), " ", segment.text.trim())),
      );
      return;
    }
    const { color, labelOf } = this.speakerIndex();
    this.body.replaceChildren(
      ...turns(segments).map((turn) => {
        const label = turn.speaker == null ? null : labelOf.get(turn.speaker) ?? null;
        return h(
          "div",
          { class: "turn", dataset: { speaker: label ?? "", color: label == null ? "none" : String(color.get(label)) } },
          h(
            "div",
            { class: "turn-head" },
            h("span", { class: "turn-speaker", title: label && label !== turn.speaker ? label : null }, turn.speaker ?? "Unknown speaker"),
            h("span", { class: "time turn-time" }, clock(turn.start)),
          ),
          h("p", { class: "turn-text" }, turn.texts.join(" ")),
        );
      }),
    );
  }

  /** One input per speaker label, filled with its name (empty while unnamed). */
  renderNames(speakers) {
    this.names.hidden = !speakers.length;
    if (!speakers.length) return;
    const { color } = this.speakerIndex();
    const rows = speakers.map((speaker) => {
      const id = `speaker-${this.jobId}-${this.index}-${speaker.label}`.replace(/[^A-Za-z0-9_-]/g, "_");
      return h(
        "div",
        { class: "speaker-name", dataset: { color: String(color.get(speaker.label)) } },
        h("label", { for: id, class: "speaker-label" }, speaker.label),
        h("input", { id, type: "text", name: speaker.label, value: speaker.name === speaker.label ? "" : speaker.name, placeholder: "Name", maxlength: NAME_MAX, autocomplete: "off", spellcheck: "false" }),
      );
    });
    this.names.replaceChildren(h("span", { class: "exports-label" }, "Speakers"), ...rows, h("button", { type: "submit", class: "btn btn-small" }, "Save names"));
  }

  /** PATCH the names (an empty input forgets a name), then show the transcript with them. */
  async saveNames(event) {
    event.preventDefault();
    const button = this.names.querySelector("button[type=submit]");
    const names = {};
    for (const input of this.names.querySelectorAll("input[type=text]")) {
      names[input.name] = input.value.trim() || null;
    }
    button.disabled = true;
    button.classList.add("busy");
    try {
      const answer = await this.getApi().nameSpeakers(this.jobId, this.index, names);
      showError(this.error, null, describe);
      toast(`Speakers named: ${answer.speakers.map((s) => (s.name === s.label ? s.label : `${s.label} → ${s.name}`)).join(", ")}`, "ok");
      await this.load();
    } catch (error) {
      showError(this.error, error, describe);
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }

  /** The transcript as a file: fetched with the key, saved through a blob URL. */
  async download(format, button) {
    button.disabled = true;
    button.classList.add("busy");
    try {
      const blob = await this.getApi().transcriptFile(this.jobId, this.index, format);
      const href = URL.createObjectURL(blob);
      const link = h("a", { href, download: `${this.jobId}-${this.index}.${format}`, hidden: true });
      this.el.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60_000);
    } catch (error) {
      showError(this.error, error, describe);
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }
}

// An item's transcript under its row in a job card or the library: a player of its
// recording (a click on a timestamp or a segment seeks there and plays; the segment being
// heard is highlighted and kept in view), speaker turns (consecutive segments of one
// speaker in one block, a colour per speaker), names for the speakers' labels, and the
// srt / vtt / txt files, fetched with the API key.

import { describe } from "./api.js";
import { Player } from "./player.js";
import { clock, h, showError, toast } from "./ui.js";

const FORMATS = [
  ["srt", "SRT"],
  ["vtt", "VTT"],
  ["txt", "TXT"],
];
/** How many speaker colours style.css defines (.turn[data-color="0"] ...). */
const COLORS = 8;
const NAME_MAX = 64;

/** Consecutive segments of one speaker as turns: {speaker, start, texts, segments}. */
export function turns(segments) {
  const out = [];
  for (const segment of segments) {
    const text = (segment.text || "").trim();
    if (!text) continue;
    const speaker = segment.speaker ?? null;
    const last = out.at(-1);
    if (last && last.speaker === speaker) {
      last.texts.push(text);
      last.segments.push(segment);
      if (last.start == null) last.start = segment.start;
    } else {
      out.push({ speaker, start: segment.start, texts: [text], segments: [segment] });
    }
  }
  return out;
}

/** The index of the segment being heard at `t` (the last one started by then), or -1. */
export function currentSegment(spans, t) {
  let lo = 0;
  let hi = spans.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (spans[mid].start <= t) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (found < 0) return -1;
  const span = spans[found];
  // in a silence after a segment's end, the next one is not yet highlighted either
  return span.end == null || t < span.end + 1 ? found : -1;
}

export class TranscriptView {
  /** getApi() → the current Api; the transcript of item `index` of job `jobId`. */
  constructor(getApi, jobId, index, { url = null } = {}) {
    this.getApi = getApi;
    this.url = url; // the item's page on its platform, where it has one
    this.jobId = jobId;
    this.index = index;
    this.data = null;
    this.error = h("div", { class: "alert", role: "alert", hidden: true });
    this.meta = h("span", { class: "muted transcript-meta" });
    this.names = h("form", { class: "speaker-names", hidden: true, novalidate: true, onsubmit: (event) => this.saveNames(event) });
    this.body = h("div", { class: "transcript-body" }, h("p", { class: "muted" }, "Loading the transcript…"));
    this.player = new Player({ label: `Recording of item ${index + 1}` });
    this.player.el.hidden = true;
    this.playError = h("div", { class: "alert", role: "alert", hidden: true });
    this.spans = []; // {start, end, el} of the shown segments, in time order
    this.current = null;
    this.player.audio.addEventListener("timeupdate", () => this.follow());
    this.player.audio.addEventListener("seeked", () => this.follow());
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
      this.player.el,
      this.playError,
      this.names,
      this.body,
    );
  }

  /** Seek the recording to `seconds` and play it. */
  seek(seconds) {
    if (!this.player.available || seconds == null) return;
    this.player.playFrom(seconds).then(
      () => showError(this.playError, null, describe),
      (cause) => showError(this.playError, cause, describe),
    );
  }

  /** Highlight the segment being heard, scrolling the transcript to keep it in view. */
  follow() {
    const index = currentSegment(this.spans, this.player.audio.currentTime);
    const el = index < 0 ? null : this.spans[index].el;
    if (el === this.current) return;
    this.current?.classList.remove("current");
    this.current?.removeAttribute("aria-current");
    this.current = el;
    if (!el) return;
    el.classList.add("current");
    el.setAttribute("aria-current", "true");
    // only the transcript's own box scrolls, never the page under the listener
    const box = this.body.getBoundingClientRect();
    const line = el.getBoundingClientRect();
    if (line.top < box.top || line.bottom > box.bottom) {
      this.body.scrollTop = Math.max(0, this.body.scrollTop + line.top - box.top - box.height / 3);
    }
  }

  /** A segment that seeks the player there when clicked (or Enter / Space). */
  segmentEl(tag, segment, attrs, ...children) {
    const playable = this.player.available && segment.start != null;
    const el = h(tag, { ...attrs, dataset: { start: segment.start ?? "", end: segment.end ?? "" }, tabindex: playable ? "0" : null, title: playable ? `Play from ${clock(segment.start)}` : null }, ...children);
    if (playable) {
      el.classList.add("seekable");
      el.addEventListener("click", (event) => {
        if (window.getSelection?.().toString()) return; // selecting text does not seek
        event.stopPropagation();
        this.seek(segment.start);
      });
      el.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.seek(segment.start);
        }
      });
    }
    if (segment.start != null) this.spans.push({ start: Number(segment.start), end: segment.end == null ? null : Number(segment.end), el });
    return el;
  }

  /** A timestamp: a button that seeks there when the recording is kept. */
  timeEl(seconds, className) {
    if (!this.player.available || seconds == null) return h("span", { class: className }, clock(seconds));
    return h("button", { type: "button", class: `${className} seek`, title: `Play from ${clock(seconds)}`, onclick: (event) => { event.stopPropagation(); this.seek(seconds); } }, clock(seconds));
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
    // A document has no recording to play; anything timed without one says so.
    const timed = data.source !== "document" && (data.segments || []).some((segment) => segment.start != null);
    this.player.el.hidden = !timed && !data.media_url;
    const link = this.url ? h("a", { href: this.url, target: "_blank", rel: "noopener noreferrer" }, "open it at its source ↗") : null;
    this.player.setSource(data.media_url || null, { missing: link ? ["Recording not kept: ", link] : "Recording not kept" });
    this.spans = [];
    this.current = null;
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
          .map((segment) => this.segmentEl("p", segment, { class: "segment" }, this.timeEl(segment.start, "time"), " ", segment.text.trim())),
      );
      this.spans.sort((a, b) => a.start - b.start);
      this.follow();
      return;
    }
    const { color, labelOf } = this.speakerIndex();
    this.body.replaceChildren(
      ...turns(segments).map((turn) => {
        const label = turn.speaker == null ? null : labelOf.get(turn.speaker) ?? null;
        const parts = [];
        turn.segments.forEach((segment, i) => {
          if (i) parts.push(" ");
          parts.push(this.segmentEl("span", segment, { class: "seg" }, segment.text.trim()));
        });
        return h(
          "div",
          { class: "turn", dataset: { speaker: label ?? "", color: label == null ? "none" : String(color.get(label)) } },
          h(
            "div",
            { class: "turn-head" },
            h("span", { class: "turn-speaker", title: label && label !== turn.speaker ? label : null }, turn.speaker ?? "Unknown speaker"),
            this.timeEl(turn.start, "time turn-time"),
          ),
          h("p", { class: "turn-text" }, parts),
        );
      }),
    );
    this.spans.sort((a, b) => a.start - b.start);
    this.follow();
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

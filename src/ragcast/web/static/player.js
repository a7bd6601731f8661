// Playing recordings: an <audio> element on a signed media_url (it needs no API key),
// seeked to a moment and played; one recording plays at a time on the page.

import { h } from "./ui.js";

/** media_url without its fragment: "…/media/x?token=…#t=93" → "…/media/x?token=…". */
export function withoutFragment(url) {
  const at = url.indexOf("#");
  return at < 0 ? url : url.slice(0, at);
}

/** The start of a media fragment ("#t=93.5" or "#t=93,120") in seconds, else null. */
export function fragmentStart(url) {
  const match = /#t=(?:npt:)?([\d.]+)/.exec(url || "");
  return match ? Number(match[1]) : null;
}

function samePath(a, b) {
  try {
    return new URL(a, location.href).pathname === new URL(b, location.href).pathname;
  } catch {
    return false;
  }
}

// Whatever starts playing pauses every other recording of the page.
document.addEventListener(
  "play",
  (event) => {
    for (const audio of document.querySelectorAll("audio")) {
      if (audio !== event.target && !audio.paused) audio.pause();
    }
  },
  true,
);

/** An <audio controls> for one recording, loaded only when first played. */
export class Player {
  constructor({ label = "Recording" } = {}) {
    this.url = null;
    this.audio = h("audio", { class: "player", controls: true, preload: "none", "aria-label": label });
    this.missing = h("p", { class: "player-missing muted", hidden: true }, "Recording not kept");
    this.el = h("div", { class: "player-box" }, this.audio, this.missing);
  }

  /** Point the player at `url` (a media_url; null: "recording not kept"). */
  setSource(url, { missing = "Recording not kept" } = {}) {
    this.missing.replaceChildren(...[missing].flat());
    this.missing.hidden = Boolean(url);
    this.audio.hidden = !url;
    const bare = url ? withoutFragment(url) : null;
    if (bare === this.url) return;
    // A fresh link to the same recording (a new token) keeps what is playing.
    if (bare && this.url && !this.audio.error && samePath(bare, this.url)) return;
    this.url = bare;
    if (bare) {
      this.audio.src = bare;
    } else {
      this.audio.removeAttribute("src");
      this.audio.load();
    }
  }

  get available() {
    return Boolean(this.url);
  }

  /** Seek to `seconds` and play: once the recording's metadata is there, if not yet. */
  async playFrom(seconds) {
    if (!this.url) return;
    const audio = this.audio;
    const at = Math.max(0, Number(seconds) || 0);
    if (audio.readyState < HTMLMediaElement.HAVE_METADATA) {
      if (audio.preload === "none") audio.preload = "metadata";
      const ready = new Promise((resolve, reject) => {
        const done = () => {
          audio.removeEventListener("loadedmetadata", done);
          audio.removeEventListener("error", failed);
          resolve();
        };
        const failed = () => {
          audio.removeEventListener("loadedmetadata", done);
          audio.removeEventListener("error", failed);
          reject(new Error("The recording could not be loaded (its link may have expired: search or open it again)"));
        };
        audio.addEventListener("loadedmetadata", done);
        audio.addEventListener("error", failed);
      });
      if (audio.networkState !== HTMLMediaElement.NETWORK_LOADING || audio.error) audio.load();
      await ready;
    }
    audio.currentTime = Number.isFinite(audio.duration) ? Math.min(at, Math.max(0, audio.duration - 0.05)) : at;
    await audio.play();
  }
}

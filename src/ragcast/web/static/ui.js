// Small DOM helpers: elements are built with text nodes only, never from HTML strings,
// so titles and messages from the server cannot inject markup.

/** h("div", {class: "x", onclick}, child, "text", ...) → an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** 1536 → "1.5 KB". */
export function bytes(n) {
  if (!Number.isFinite(n)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

/** 93.4 → "01:33"; past an hour "1:02:03". */
export function clock(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "--:--";
  const total = Math.max(0, Math.floor(Number(seconds)));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${String(minutes).padStart(2, "0")}:${secs}`;
}

/** "3 min ago", "yesterday", or the date. */
export function ago(iso) {
  const then = new Date(/([zZ]|[+-]\d\d:?\d\d)$/.test(iso) ? iso : `${iso}Z`); // naive times are UTC
  const seconds = (Date.now() - then.getTime()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return then.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

/** A whole percentage that reaches 100 only when the work is done. */
export function percent(progress) {
  return `${Math.min(100, Math.floor(Number(progress) || 0))}%`;
}

/** A progress bar: {el, set(fraction 0..1, state)}. */
export function progressBar(label) {
  const fill = h("div", { class: "bar-fill" });
  const el = h("div", { class: "bar", role: "progressbar", "aria-label": label, "aria-valuemin": 0, "aria-valuemax": 100 }, fill);
  return {
    el,
    set(fraction, state = "") {
      const value = Math.max(0, Math.min(1, fraction || 0));
      fill.style.width = `${(value * 100).toFixed(1)}%`;
      el.setAttribute("aria-valuenow", String(Math.floor(value * 100)));
      el.dataset.state = state;
    },
  };
}

/** A transient message at the bottom of the page. */
export function toast(message, kind = "info") {
  const host = $("#toasts");
  const el = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  host.append(el);
  setTimeout(() => el.classList.add("leaving"), 4500);
  setTimeout(() => el.remove(), 5000);
}

/** Show an error in a box (or hide the box with a null error). */
export function showError(box, error, describe) {
  box.replaceChildren();
  box.hidden = !error;
  if (error) box.append(h("strong", {}, "Error: "), describe(error));
}

const STOPWORDS = new Set("the and for are but not you all any can had her was one our out has his how its who did yes this that with have from they what were when your said there which their will would about into than them then these some".split(" "));

/** Wrap each occurrence of the query's words in <mark>, without any HTML parsing. */
export function highlight(text, query) {
  const words = [...new Set(query.toLowerCase().match(/[\p{L}\p{N}']{3,}/gu) || [])].filter((w) => !STOPWORDS.has(w));
  if (!words.length) return [text];
  const pattern = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "giu");
  return text.split(pattern).map((part, i) => (i % 2 ? h("mark", {}, part) : part));
}

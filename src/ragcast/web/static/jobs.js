// The Jobs panel: the user's jobs, newest first, each a live JobCard.

import { describe } from "./api.js";
import { JobCard, TERMINAL } from "./jobcard.js";
import { $, toast } from "./ui.js";

const PAGE = 20;
const REFRESH_MS = 20000;

export class JobsPanel {
  /** onChange(jobs) after each refresh (the Search panel lists them); onTitle(jobId,
   *  title) when a job is named by its files. */
  constructor(getApi, onChange, onTitle = null) {
    this.getApi = getApi;
    this.onChange = onChange;
    this.onTitle = onTitle;
    this.cards = new Map();
    this.limit = PAGE;
    this.timer = null;
    $("#jobs-refresh").addEventListener("click", () => this.refresh(true));
    $("#jobs-more").addEventListener("click", () => {
      this.limit += PAGE;
      this.refresh(true);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.timer) this.refresh();
    });
  }

  start() {
    this.stop();
    this.refresh();
    this.timer = setInterval(() => {
      if (!document.hidden) this.refresh();
    }, REFRESH_MS);
  }

  /** Forget everything (the key was forgotten). */
  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.cards.forEach((card) => card.stop());
    this.cards.clear();
    $("#job-list").replaceChildren();
  }

  card(summary, options) {
    let card = this.cards.get(summary.job_id);
    if (!card) {
      card = new JobCard(this.getApi, summary, { ...options, onTitle: this.onTitle });
      this.cards.set(summary.job_id, card);
    } else {
      card.update(summary);
    }
    return card;
  }

  async refresh(announce = false) {
    const button = $("#jobs-refresh");
    button.classList.add("busy");
    try {
      const page = await this.getApi().jobs(this.limit, 0);
      const list = $("#job-list");
      const seen = new Set();
      page.jobs.forEach((summary) => {
        // A running job opens on its own, to show its items' stages.
        const card = this.card(summary, { expanded: !TERMINAL.has(summary.status) });
        seen.add(summary.job_id);
        list.append(card.el); // re-appending keeps the server's order
        card.follow();
      });
      for (const [id, card] of this.cards) {
        if (!seen.has(id)) {
          card.stop();
          card.el.remove();
          this.cards.delete(id);
        }
      }
      $("#jobs-count").textContent = page.total ? String(page.total) : "";
      $("#jobs-empty").hidden = page.total > 0;
      $("#jobs-more").hidden = page.total <= page.jobs.length;
      this.onChange(page.jobs);
    } catch (error) {
      if (announce || error.status === 401) toast(describe(error), "error");
    } finally {
      button.classList.remove("busy");
    }
  }

  /** A job this page just started: shown at once and followed over its ticketed socket. */
  add(accepted) {
    const summary = { job_id: accepted.job_id, status: "pending", progress: 0, stage: "Queued", embeddings: 0 };
    const card = this.card(summary, { expanded: true });
    $("#job-list").prepend(card.el);
    $("#jobs-empty").hidden = true;
    card.follow(accepted.websocket_url);
    this.refresh();
  }
}

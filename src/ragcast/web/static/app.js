// The ragcast dashboard: connect with an API key, start jobs, watch them live, export
// and download results, and search what was said. Plain ES modules, no build step.

import { Api, describe } from "./api.js";
import { JobsPanel } from "./jobs.js";
import { LibraryPanel } from "./library.js";
import { NewJobPanel } from "./newjob.js";
import { SearchPanel } from "./search.js";
import { $, $$, showError } from "./ui.js";

const STORAGE_KEY = "ragcast.apiKey";
let api = null;
const getApi = () => api;

const search = new SearchPanel(getApi);
const library = new LibraryPanel(getApi, (titles) => search.setTitles(titles));
const jobs = new JobsPanel(
  getApi,
  (list) => search.setJobs(list),
  (jobId, title) => search.setTitles(new Map([[jobId, title]])),
);
new NewJobPanel(getApi, (accepted) => jobs.add(accepted));

/** The side column's tabs: Jobs, Library (loaded afresh when opened), Search. */
function selectTab(tab, { focus = false } = {}) {
  for (const other of $$('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(`#${other.getAttribute("aria-controls")}`).hidden = !selected;
  }
  if (focus) tab.focus();
  if (tab.id === "tab-library" && api) library.load();
  if (tab.id === "tab-search") $("#search-query").focus();
}
const tabs = $$('[role="tab"]');
tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step) selectTab(tabs[(i + step + tabs.length) % tabs.length], { focus: true });
  });
});

function show(connected) {
  $("#connect").hidden = connected;
  $("#workspace").hidden = !connected;
  $("#session").hidden = !connected;
  if (connected) {
    $("#key-label").textContent = `${api.key.slice(0, 11)}…`;
    jobs.start();
  } else {
    jobs.stop();
    search.clear();
    library.clear();
    selectTab($("#tab-jobs"));
    $("#key-input").focus();
  }
}

/** Try a key with one cheap read; keep it only if the server accepts it. */
async function connect(key, { remember }) {
  const candidate = new Api(key);
  await candidate.jobs(1, 0);
  api = candidate;
  if (remember) localStorage.setItem(STORAGE_KEY, key);
  show(true);
}

$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#key-input");
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    await connect(input.value.trim(), { remember: true });
    input.value = "";
    showError($("#key-error"), null, describe);
  } catch (error) {
    const message = error.status === 401 ? new Error(`This key was not accepted: ${describe(error)}`) : error;
    showError($("#key-error"), message, describe);
  } finally {
    button.disabled = false;
  }
});

$("#forget-key").addEventListener("click", () => {
  localStorage.removeItem(STORAGE_KEY);
  api = null;
  show(false);
});

const saved = localStorage.getItem(STORAGE_KEY);
if (saved) {
  connect(saved, { remember: false }).catch((error) => {
    if (error.status === 401) localStorage.removeItem(STORAGE_KEY);
    show(false);
    showError($("#key-error"), error, describe);
  });
} else {
  show(false);
}

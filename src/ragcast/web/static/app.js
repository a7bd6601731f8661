// The ragcast dashboard: connect with an API key, start jobs, watch them live, export
// and download results, and search what was said. Plain ES modules, no build step.

import { Api, describe } from "./api.js";
import { JobsPanel } from "./jobs.js";
import { NewJobPanel } from "./newjob.js";
import { SearchPanel } from "./search.js";
import { $, showError } from "./ui.js";

const STORAGE_KEY = "ragcast.apiKey";
let api = null;
const getApi = () => api;

const search = new SearchPanel(getApi);
const jobs = new JobsPanel(getApi, (list) => search.setJobs(list));
new NewJobPanel(getApi, (accepted) => jobs.add(accepted));

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

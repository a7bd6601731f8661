// The dashboard's client of the Bulk Processing API: fetch with the bearer key, the
// contract's error body as ApiError, and the contract's retry logic for transient failures.

export const PREFIX = "/api/public/bulk";
const MAX_RETRIES = 3;
const MAX_RETRY_WAIT_S = 30;

/** An error answer of the API, carrying the contract's body ({error, message, details}). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.code = this.body.error || "http_error";
    this.details = this.body.details || null;
    this.retryAfter = this.body.retry_after ?? null;
  }
}

/** A readable one-paragraph account of an error, with the field at fault when known. */
export function describe(error) {
  if (!(error instanceof ApiError)) return String(error?.message || error);
  let text = error.message;
  if (error.details?.field) text += ` (${error.details.field}: ${error.details.issue})`;
  if (error.code === "rate_limit_exceeded" && error.retryAfter) {
    text += ` Try again in ${Math.ceil(error.retryAfter / 60)} min.`;
  }
  if (error.body.request_id) text += ` Request id: ${error.body.request_id}.`;
  return text;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!body || typeof body !== "object") {
    body = { error: "http_error", message: `${response.status} ${response.statusText}`.trim() };
  }
  const header = Number(response.headers.get("Retry-After"));
  if (body.retry_after == null && Number.isFinite(header) && header > 0) body.retry_after = header;
  return new ApiError(response.status, body);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function transient(error) {
  return error.status === 0 || error.status === 429 || error.status >= 500;
}

/** The API, authenticated by one key. */
export class Api {
  constructor(key) {
    this.key = key;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.key}`, ...extra };
  }

  /** One request with retries: 1 s, 2 s, 4 s, or the server's Retry-After when shorter than 30 s. */
  async send(method, path, { json, params } = {}) {
    const query = params ? `?${new URLSearchParams(params)}` : "";
    const init = { method, headers: this.headers() };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    for (let attempt = 0; ; attempt += 1) {
      let error;
      try {
        const response = await fetch(`${PREFIX}${path}${query}`, init);
        if (response.ok) return response;
        error = await errorFrom(response);
      } catch (cause) {
        error = new ApiError(0, { error: "connection_error", message: `Cannot reach the server: ${cause.message}` });
      }
      const wait = error.retryAfter ?? 2 ** attempt;
      if (attempt >= MAX_RETRIES || !transient(error) || wait > MAX_RETRY_WAIT_S) throw error;
      await sleep(wait * 1000);
    }
  }

  async json(method, path, options) {
    return (await this.send(method, path, options)).json();
  }

  jobs(limit = 20, offset = 0) {
    return this.json("GET", "/jobs", { params: { limit, offset } });
  }
  status(jobId) {
    return this.json("GET", `/job/${encodeURIComponent(jobId)}/status`);
  }
  /** One page of a job's items in index order: {items, total, offset, next_after}; pass
   *  next_after as `after` for the next page (null on the last). */
  items(jobId, { limit = 100, after = null, status = null } = {}) {
    const params = { limit };
    if (after != null) params.after = after;
    if (status) params.status = status;
    return this.json("GET", `/job/${encodeURIComponent(jobId)}/items`, { params });
  }
  ticket(jobId) {
    return this.json("GET", `/job/${encodeURIComponent(jobId)}/ticket`);
  }
  cancel(jobId) {
    return this.json("POST", `/job/${encodeURIComponent(jobId)}/cancel`);
  }
  process(body) {
    return this.json("POST", "/process", { json: body });
  }
  preview(url, page = 1, pageSize = 50) {
    return this.json("GET", "/preview", { params: { url, page, page_size: pageSize } });
  }
  startExport(jobId, format) {
    const exportId = `export-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    return this.json("POST", "/export", { json: { job_id: jobId, format, export_id: exportId } });
  }
  exportStatus(exportId) {
    return this.json("GET", `/export/${encodeURIComponent(exportId)}/status`);
  }
  search(body) {
    return this.json("POST", "/search", { json: body });
  }
  /** An item's transcript as JSON: speakers ({label, name}) and segments. */
  transcript(jobId, index) {
    return this.json("GET", `/job/${encodeURIComponent(jobId)}/items/${Number(index)}/transcript`, { params: { format: "json" } });
  }
  /** An item's transcript as a file ("srt", "vtt" or "txt"), a Blob. */
  async transcriptFile(jobId, index, format) {
    const response = await this.send("GET", `/job/${encodeURIComponent(jobId)}/items/${Number(index)}/transcript`, { params: { format } });
    return response.blob();
  }
  /** Name an item's speakers: {"SPEAKER_00": "Host"}; null forgets a name. */
  nameSpeakers(jobId, index, names) {
    return this.json("PATCH", `/job/${encodeURIComponent(jobId)}/items/${Number(index)}/speakers`, { json: names });
  }

  /** The export's file as a Blob; onProgress(received, total) while it streams. */
  async download(exportId, onProgress) {
    const response = await this.send("GET", `/download/${encodeURIComponent(exportId)}`);
    const total = Number(response.headers.get("Content-Length")) || 0;
    if (!response.body) return response.blob();
    const reader = response.body.getReader();
    const parts = [];
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      received += value.length;
      onProgress?.(received, total);
    }
    return new Blob(parts, { type: "application/octet-stream" });
  }

  /** Upload one file with XMLHttpRequest, for its upload progress events. */
  upload(file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${PREFIX}/uploads`);
      xhr.setRequestHeader("Authorization", `Bearer ${this.key}`);
      xhr.responseType = "json";
      xhr.upload.onprogress = (event) => onProgress?.(event.loaded, event.lengthComputable ? event.total : file.size);
      xhr.onload = () => {
        const body = xhr.response && typeof xhr.response === "object" ? xhr.response : null;
        if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
        else reject(new ApiError(xhr.status, body || { error: "http_error", message: `Upload failed (HTTP ${xhr.status})` }));
      };
      xhr.onerror = () => reject(new ApiError(0, { error: "connection_error", message: "Upload failed: the server could not be reached" }));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }
}

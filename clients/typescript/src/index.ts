// @ragcast/client: the contract's BulkProcessingClient, typed from the OpenAPI schema,
// with WebSocket progress (the `ws` package) and the contract's retry logic.

import WebSocket from "ws";

import { ApiError, ConnectionError, errorFrom, errorFromResponse } from "./errors.js";
import { type ProgressMessage, isTerminal } from "./events.js";
import { type RetryOptions, retryDelay, sleep as realSleep } from "./retry.js";
import type { components, operations } from "./schema.js";

export * from "./errors.js";
export * from "./events.js";
export * from "./retry.js";
export type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];
export type JobCreate = Schemas["JobCreate"];
/** The body of `startProcessing`: the contract's config; `job_id` is made up when absent. */
export type BulkProcessingConfig = Omit<JobCreate, "job_id"> & { job_id?: string };
export type JobResponse = Schemas["JobAccepted"];
export type JobStatus = Schemas["JobStatus"];
export type JobList = Schemas["JobList"];
export type JobSummary = Schemas["JobSummary"];
/** One page of a job's items (`getItemsPage`). */
export type ItemList = Schemas["ItemList"];
export type ItemStatus = Schemas["ItemStatus"];
/** The statuses an item can be in (the `status` filter of the items). */
export type ItemState = NonNullable<NonNullable<operations["getJobItems"]["parameters"]["query"]>["status"]>;
/** Every item of a job, gathered page by page (`getItems`). */
export interface AllItems {
  job_id: string;
  items: ItemStatus[];
  total: number;
}
/** Which page of a job's items: `limit` 1-1000 (default 100), then `after` (the previous
 *  page's `next_after`) or `offset`; `status` keeps the items in that status. */
export interface ItemsPageOptions {
  limit?: number;
  after?: number;
  offset?: number;
  status?: ItemState;
}
export type JobCancelled = Schemas["JobCancelled"];
export type JobTicket = Schemas["JobTicket"];
export type ExportFormat = Schemas["ExportCreate"]["format"];
export type ExportResponse = Schemas["ExportAccepted"];
export type ExportStatus = Schemas["ExportStatus"];
export type UploadResponse = Schemas["UploadPublic"];
export type SearchQuery = Schemas["SearchQuery"];
export type SearchResults = Schemas["SearchResults"];
export type SearchHit = Schemas["SearchHit"];
export type ItemTranscript = Schemas["ItemTranscript"];
export type TranscriptSegment = Schemas["TranscriptSegment"];
export type SpeakerName = Schemas["SpeakerName"];
export type ItemSpeakers = Schemas["ItemSpeakers"];
/** The formats of an item's transcript: `json` (an ItemTranscript) or text. */
export type TranscriptFormat = "json" | "srt" | "vtt" | "txt";
/** Label to name (`{ SPEAKER_00: "Host" }`); null forgets a name. */
export type SpeakerNames = Record<string, string | null>;
export type ChannelPreview = Schemas["ChannelPreview"];
export type CleanupResult = Schemas["CleanupResult"];
export type JobState = JobStatus["status"];

export const API_PREFIX = "/api/public/bulk";
const TERMINAL_STATUSES = new Set<JobState>(["completed", "failed", "cancelled"]);

export interface ClientOptions extends RetryOptions {
  /** Timeout of one try in milliseconds (default 60000). */
  timeoutMs?: number;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** How to wait between tries (tests replace it). */
  sleep?: (ms: number) => Promise<void>;
}

interface Call {
  method: string;
  path: string;
  params?: Record<string, string | number | undefined>;
  json?: unknown;
  body?: FormData;
}

const seg = encodeURIComponent;

/** A client of one ragcast server, authenticated by one API key. */
export class BulkProcessingClient {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly options: ClientOptions;

  constructor(baseUrl: string, apiKey: string, options: ClientOptions = {}) {
    if (!/^https?:\/\//.test(baseUrl)) throw new TypeError(`baseUrl must start with http:// or https://, not ${baseUrl}`);
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.options = options;
  }

  /** Send with retries; the answer is ok (errors are ApiError subclasses). */
  private async send(call: Call): Promise<Response> {
    const fetchImpl = this.options.fetch ?? fetch;
    const wait = this.options.sleep ?? realSleep;
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(call.params ?? {})) if (value !== undefined) query.set(key, String(value));
    const qs = query.toString();
    const url = `${this.baseUrl}${API_PREFIX}${call.path}${qs ? `?${qs}` : ""}`;
    const headers: Record<string, string> = { Authorization: `Bearer ${this.apiKey}` };
    let body: string | FormData | undefined = call.body;
    if (call.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(call.json);
    }
    for (let attempt = 0; ; attempt += 1) {
      let error: ApiError;
      try {
        const signal = AbortSignal.timeout(this.options.timeoutMs ?? 60_000);
        const response = await fetchImpl(url, { method: call.method, headers, body, signal });
        if (response.ok) return response;
        error = await errorFromResponse(response);
      } catch (cause) {
        const reason = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause);
        error = new ConnectionError(`cannot reach ${this.baseUrl}: ${reason}`, { cause });
      }
      const delay = retryDelay(attempt, error, this.options);
      if (delay === null) throw error;
      await wait(delay);
    }
  }

  private async json<T>(call: Call): Promise<T> {
    return (await (await this.send(call)).json()) as T;
  }

  // -- the contract's methods ---------------------------------------------------------

  /** Start a job (`POST /process`); the same job_id and body again return the same job. */
  startProcessing(config: BulkProcessingConfig): Promise<JobResponse> {
    // The id is fixed before the first try, so a retried request is the same job.
    const body = { ...config, job_id: config.job_id ?? `bulk-${Date.now()}` };
    return this.json({ method: "POST", path: "/process", json: body });
  }

  /**
   * Open a job's progress WebSocket and hand each message to `onUpdate`. With the
   * `websocketUrl` from `startProcessing` (ticket included) no header is needed; without
   * it the socket is opened with this client's API key.
   */
  connectToProgress(jobId: string, onUpdate: (data: ProgressMessage) => void, websocketUrl?: string): WebSocket {
    const ws = this.openSocket(jobId, websocketUrl);
    ws.on("message", (data) => onUpdate(JSON.parse(String(data)) as ProgressMessage));
    return ws;
  }

  /** Start an export of a finished job; `exportId` is made up when absent. */
  exportResults(jobId: string, format: ExportFormat, exportId?: string): Promise<ExportResponse> {
    const body = { job_id: jobId, format, export_id: exportId ?? `export-${Date.now()}-${Math.random().toString(36).slice(2, 8)}` };
    return this.json({ method: "POST", path: "/export", json: body });
  }

  // -- jobs ---------------------------------------------------------------------------

  getStatus(jobId: string): Promise<JobStatus> {
    return this.json({ method: "GET", path: `/job/${seg(jobId)}/status` });
  }

  /** One page of a job's items in index order, each with its stage, transcript source and error. */
  getItemsPage(jobId: string, options: ItemsPageOptions = {}): Promise<ItemList> {
    const { limit = 100, after, offset, status } = options;
    return this.json({ method: "GET", path: `/job/${seg(jobId)}/items`, params: { limit, after, offset, status } });
  }

  /** Every item of a job (those in `status`, when given) in index order, a page of `pageSize` at a time. */
  async *iterItems(jobId: string, options: { status?: ItemState; pageSize?: number } = {}): AsyncGenerator<ItemStatus> {
    let after: number | undefined;
    for (;;) {
      const page = await this.getItemsPage(jobId, { limit: options.pageSize ?? 1000, after, status: options.status });
      yield* page.items;
      if (page.next_after == null) return;
      after = page.next_after;
    }
  }

  /** All the items of a job, every page fetched (`iterItems`); one page is `getItemsPage`. */
  async getItems(jobId: string, options: { status?: ItemState; pageSize?: number } = {}): Promise<AllItems> {
    const items: ItemStatus[] = [];
    for await (const item of this.iterItems(jobId, options)) items.push(item);
    return { job_id: jobId, items, total: items.length };
  }

  /**
   * An item's whole transcript: the ItemTranscript of `json` (speakers and segments), or
   * the text of `srt`, `vtt` (speakers as `<v Name>`) or `txt`. A ConflictError while the
   * item has no transcript yet.
   */
  transcript(jobId: string, index: number, format?: "json"): Promise<ItemTranscript>;
  transcript(jobId: string, index: number, format: "srt" | "vtt" | "txt"): Promise<string>;
  transcript(jobId: string, index: number, format: TranscriptFormat): Promise<ItemTranscript | string>;
  async transcript(jobId: string, index: number, format: TranscriptFormat = "json"): Promise<ItemTranscript | string> {
    const response = await this.send({ method: "GET", path: `/job/${seg(jobId)}/items/${seg(String(index))}/transcript`, params: { format } });
    return format === "json" ? ((await response.json()) as ItemTranscript) : response.text();
  }

  /** Name a diarized item's speakers; transcripts, exports and search then show the names. */
  nameSpeakers(jobId: string, index: number, names: SpeakerNames): Promise<ItemSpeakers> {
    return this.json({ method: "PATCH", path: `/job/${seg(jobId)}/items/${seg(String(index))}/speakers`, json: names });
  }

  cancel(jobId: string): Promise<JobCancelled> {
    return this.json({ method: "POST", path: `/job/${seg(jobId)}/cancel` });
  }

  /** Delete a finished job with its chunks, vectors, exports and the files only it used. */
  deleteJob(jobId: string): Promise<components["schemas"]["JobDeleted"]> {
    return this.json({ method: "DELETE", path: `/job/${seg(jobId)}` });
  }

  /** Delete an upload no job uses. */
  deleteUpload(documentId: string): Promise<components["schemas"]["UploadDeleted"]> {
    return this.json({ method: "DELETE", path: `/uploads/${seg(documentId)}` });
  }

  /** A fresh ticketed `websocket_url` for a job. */
  ticket(jobId: string): Promise<JobTicket> {
    return this.json({ method: "GET", path: `/job/${seg(jobId)}/ticket` });
  }

  listJobs(options: { limit?: number; offset?: number; status?: JobState } = {}): Promise<JobList> {
    return this.json({ method: "GET", path: "/jobs", params: { limit: options.limit ?? 50, offset: options.offset ?? 0, status: options.status } });
  }

  /** One page of a channel's items, whose ids go into `selected_content`. */
  preview(url: string, page = 1, pageSize = 50): Promise<ChannelPreview> {
    return this.json({ method: "GET", path: "/preview", params: { url, page, page_size: pageSize } });
  }

  /**
   * Wait until a job is completed, failed or cancelled; resolves to its final status.
   * The job is followed over its WebSocket (a fresh ticket), then its status is read once.
   * Where the socket cannot be opened or drops before the job's end (a server restart, a
   * proxy without WebSockets), the status is polled every `pollMs` instead. Rejects when
   * the job has not ended after `timeoutMs`, on either path.
   */
  async wait(jobId: string, pollMs = 2000, timeoutMs?: number): Promise<JobStatus> {
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    let status = await this.getStatus(jobId);
    if (!TERMINAL_STATUSES.has(status.status)) {
      await this.follow(jobId, deadline);
      status = await this.getStatus(jobId);
    }
    while (!TERMINAL_STATUSES.has(status.status)) {
      if (Date.now() + pollMs > deadline) throw new Error(`job ${jobId} still ${status.status} after ${timeoutMs} ms`);
      await (this.options.sleep ?? realSleep)(pollMs);
      status = await this.getStatus(jobId);
    }
    return status;
  }

  /**
   * Follow a job's socket (a fresh ticket) until its terminal message, the socket's end
   * or `deadline` (a `Date.now()`), whichever comes first. Never rejects: a failure only
   * ends it, and `wait` polls.
   */
  private async follow(jobId: string, deadline: number): Promise<void> {
    let url: string;
    try {
      url = (await this.ticket(jobId)).websocket_url;
    } catch {
      return;
    }
    const left = deadline - Date.now();
    if (left <= 0) return;
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(url, { handshakeTimeout: Math.min(this.options.timeoutMs ?? 60_000, left) });
      // setTimeout takes at most 2^31 - 1 ms; a longer wait ends the socket then, and polls.
      const timer = Number.isFinite(left) ? setTimeout(() => end(), Math.min(left, 2 ** 31 - 1)) : undefined;
      const end = (): void => {
        clearTimeout(timer);
        if (ws.readyState === WebSocket.OPEN) ws.close();
        else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
        resolve();
      };
      ws.on("message", (data) => {
        let message: ProgressMessage | null = null;
        try {
          message = JSON.parse(String(data)) as ProgressMessage;
        } catch {
          // not an event: the socket is no use, poll instead
        }
        if (message === null || isTerminal(message)) end();
      });
      ws.on("error", end); // refused (an "Unexpected server response"), unreachable, broken
      ws.on("close", end);
    });
  }

  // -- files, exports, search -----------------------------------------------------------

  /** Upload a recording or document; returns its `document_id` for `uploaded_documents`. */
  upload(data: Blob | ArrayBuffer | Uint8Array, filename: string, contentType = "application/octet-stream"): Promise<UploadResponse> {
    const blob = data instanceof Blob ? data : new Blob([data], { type: contentType });
    const form = new FormData();
    form.append("file", blob, filename);
    return this.json({ method: "POST", path: "/uploads", body: form });
  }

  exportStatus(exportId: string): Promise<ExportStatus> {
    return this.json({ method: "GET", path: `/export/${seg(exportId)}/status` });
  }

  /** The export's file. */
  async download(exportId: string): Promise<ArrayBuffer> {
    return (await this.send({ method: "GET", path: `/download/${seg(exportId)}` })).arrayBuffer();
  }

  /** The indexed chunks nearest to a query, each with its time span and deep link. */
  search(query: string | SearchQuery, options: Omit<SearchQuery, "query"> = {}): Promise<SearchResults> {
    const body = typeof query === "string" ? { ...options, query } : query;
    return this.json({ method: "POST", path: "/search", json: body });
  }

  /** Delete finished jobs older than `olderThanHours` (admin keys only). */
  cleanup(olderThanHours?: number): Promise<CleanupResult> {
    return this.json({ method: "DELETE", path: "/cleanup", params: { older_than_hours: olderThanHours } });
  }

  // -- the WebSocket --------------------------------------------------------------------

  private openSocket(jobId: string, websocketUrl?: string): WebSocket {
    if (websocketUrl) return new WebSocket(websocketUrl);
    const url = `${this.baseUrl.replace(/^http/, "ws")}${API_PREFIX}/ws/bulk-processing/${seg(jobId)}`;
    return new WebSocket(url, { headers: { Authorization: `Bearer ${this.apiKey}` } });
  }

  /**
   * Follow a job: every message up to the terminal `completed` or `error`. A refused
   * socket throws the ApiError of the server's answer (NotFoundError, AuthError).
   */
  async *monitor(jobId: string, websocketUrl?: string): AsyncGenerator<ProgressMessage, void, void> {
    const ws = this.openSocket(jobId, websocketUrl);
    const queue: ProgressMessage[] = [];
    let failure: ApiError | null = null;
    let closed = false;
    let wake: (() => void) | null = null;
    const notify = (): void => {
      wake?.();
      wake = null;
    };
    ws.on("message", (data) => {
      queue.push(JSON.parse(String(data)) as ProgressMessage);
      notify();
    });
    ws.on("unexpected-response", (request, response) => {
      // A refused handshake: the server's answer carries the contract's error body.
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const header = response.headers["retry-after"];
        failure = errorFrom(response.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"), typeof header === "string" ? header : null);
        closed = true;
        notify();
        request.destroy();
      });
    });
    ws.on("error", (error) => {
      failure ??= new ConnectionError(`WebSocket of job ${jobId} failed: ${error.message}`, { cause: error });
      closed = true;
      notify();
    });
    ws.on("close", (code, reason) => {
      // 1000: the server's close after the terminal message; anything else broke off.
      if (code !== 1000 && code !== 1005) {
        failure ??= new ConnectionError(`WebSocket of job ${jobId} closed (${code}${reason.length ? `: ${reason}` : ""})`);
      }
      closed = true;
      notify();
    });
    try {
      for (;;) {
        const message = queue.shift();
        if (message) {
          yield message;
          if (isTerminal(message)) return;
        } else if (failure) {
          throw failure;
        } else if (closed) {
          return;
        } else {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      }
    } finally {
      if (ws.readyState === WebSocket.OPEN) ws.close();
      else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    }
  }
}

// Retries and errors against a tiny local HTTP server that answers from a script.

import assert from "node:assert/strict";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";

import { ApiError, BulkProcessingClient, ConnectionError, NotFoundError, RateLimitError, ValidationError, parseRetryAfter, retryDelay } from "../src/index.js";

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };

let script: Answer[] = [];
const seen: { method: string; url: string; auth: string | undefined; body: string; at: number }[] = [];
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  let body = "";
  req.on("data", (chunk: Buffer) => (body += chunk.toString()));
  req.on("end", () => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", auth: req.headers.authorization, body, at: Date.now() });
    const answer = script.length > 1 ? script.shift()! : script[0]!;
    res.writeHead(answer.status, { "Content-Type": "application/json", ...answer.headers });
    res.end(JSON.stringify(answer.body ?? {}));
  });
});
let base = "";

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

function reset(...answers: Answer[]): { client: BulkProcessingClient; waits: number[] } {
  script = answers;
  seen.length = 0;
  const waits: number[] = [];
  const client = new BulkProcessingClient(base, "rc_test", {
    sleep: async (ms) => {
      waits.push(ms);
    },
  });
  return { client, waits };
}

const limited = { success: false, error: "rate_limit_exceeded", message: "Too many requests. Please try again in 1 seconds.", retry_after: 1 };

test("a 429 is retried after Retry-After, then succeeds", async () => {
  const { client, waits } = reset(
    { status: 429, body: limited, headers: { "Retry-After": "1" } },
    { status: 200, body: { job_id: "j1", status: "completed", progress: 100 } },
  );
  const status = await client.getStatus("j1");
  assert.equal(status.status, "completed");
  assert.deepEqual(waits, [1000]);
  assert.equal(seen.length, 2);
  assert.equal(seen[0]!.url, "/api/public/bulk/job/j1/status");
  assert.equal(seen[0]!.auth, "Bearer rc_test");
});

test("a 429 is really waited out with the default sleep", async () => {
  script = [
    { status: 429, body: { ...limited, retry_after: undefined }, headers: { "Retry-After": "1" } },
    { status: 200, body: { jobs: [], total: 0, limit: 50, offset: 0 } },
  ];
  seen.length = 0;
  const page = await new BulkProcessingClient(base, "rc_test").listJobs();
  assert.equal(page.total, 0);
  assert.equal(seen.length, 2);
  assert.ok(seen[1]!.at - seen[0]!.at >= 950, `retried after ${seen[1]!.at - seen[0]!.at} ms`);
});

test("5xx backs off 1 s, 2 s, 4 s, then throws the error body", async () => {
  const { client, waits } = reset({ status: 503, body: { success: false, error: "processing_error", message: "Internal server error", request_id: "req-1" } });
  await assert.rejects(client.getStatus("j1"), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 503);
    assert.equal(error.requestId, "req-1");
    return true;
  });
  assert.deepEqual(waits, [1000, 2000, 4000]);
  assert.equal(seen.length, 4);
});

test("a Retry-After beyond the bound is thrown at once as a RateLimitError", async () => {
  const { client, waits } = reset({ status: 429, body: { ...limited, retry_after: 2700 }, headers: { "Retry-After": "2700" } });
  await assert.rejects(client.exportResults("j1", "json"), (error: unknown) => {
    assert.ok(error instanceof RateLimitError);
    assert.equal(error.retryAfter, 2700);
    return true;
  });
  assert.deepEqual(waits, []);
});

test("a retried request is the same request: job_id and export_id are fixed first", async () => {
  const { client } = reset({ status: 502, body: {} }, { status: 200, body: { success: true } });
  await client.startProcessing({
    platform: "documents",
    input_method: "upload",
    uploaded_documents: ["doc_1"],
    embedding_model: { id: "local" },
    vector_db: { id: "chroma" },
  });
  const ids = seen.map((r) => (JSON.parse(r.body) as { job_id: string }).job_id);
  assert.equal(ids.length, 2);
  assert.equal(ids[0], ids[1]);
  assert.match(ids[0]!, /^bulk-\d+$/);
});

test("a 400 is a ValidationError with the contract's details, not retried", async () => {
  const body = { success: false, error: "validation_error", message: "Invalid embedding model configuration", details: { field: "embedding_model.dimensions", issue: "Must be between 128 and 2048" } };
  const { client, waits } = reset({ status: 400, body });
  await assert.rejects(client.search("tides"), (error: unknown) => {
    assert.ok(error instanceof ValidationError);
    assert.equal(error.message, "Invalid embedding model configuration");
    assert.deepEqual(error.details, body.details);
    return true;
  });
  assert.deepEqual(waits, []);
});

test("a 404 is a NotFoundError", async () => {
  const { client } = reset({ status: 404, body: { success: false, error: "not_found", message: "Job 'x' not found" } });
  await assert.rejects(client.cancel("x"), NotFoundError);
});

test("an unreachable server ends as a ConnectionError after the retries", async () => {
  const waits: number[] = [];
  const client = new BulkProcessingClient("http://127.0.0.1:9", "rc_test", { maxRetries: 2, sleep: async (ms) => void waits.push(ms) });
  await assert.rejects(client.listJobs(), (error: unknown) => {
    assert.ok(error instanceof ConnectionError);
    assert.equal(error.status, 0);
    return true;
  });
  assert.deepEqual(waits, [1000, 2000]);
});

test("Retry-After takes seconds or an HTTP date; the delay is bounded", () => {
  assert.equal(parseRetryAfter("7"), 7);
  assert.equal(parseRetryAfter(new Date(Date.now() + 30_000).toUTCString(), Date.now()) !== null, true);
  assert.equal(parseRetryAfter("soon"), null);
  const error = new ApiError(503, { success: false, error: "processing_error", message: "x" });
  assert.equal(retryDelay(10, error, { maxRetries: 20, maxBackoffMs: 5000 }), 5000);
  assert.equal(retryDelay(3, error), null);
});

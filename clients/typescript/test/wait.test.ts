// wait(): follows the job's WebSocket, polls where there is none. Against a tiny local
// server (HTTP and WebSocket, answering from a scenario), then against a live ragcast
// server when RAGCAST_URL and RAGCAST_API_KEY name one.

import assert from "node:assert/strict";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { after, before, test } from "node:test";

import { WebSocketServer } from "ws";

import { BulkProcessingClient } from "../src/index.js";

/** How the fake server behaves: the ticket route, the socket, and when the job ends. */
type Scenario = {
  ticket: "ok" | "missing";
  socket: "complete" | "refuse" | "drop" | "silent";
  /** Status reads answered "processing" before "completed" (the socket can end it sooner). */
  pollsBeforeDone: number;
};

let scenario: Scenario = { ticket: "ok", socket: "complete", pollsBeforeDone: 0 };
let done = false;
let statusReads = 0;
let ticketReads = 0;
let base = "";
const sockets = new WebSocketServer({ noServer: true });

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const json = (status: number, body: unknown): void => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (req.url?.endsWith("/status")) {
    statusReads += 1;
    if (statusReads > scenario.pollsBeforeDone) done = true;
    json(200, { job_id: "j1", status: done ? "completed" : "processing", progress: done ? 100 : 50 });
  } else if (req.url?.endsWith("/ticket") && scenario.ticket === "ok") {
    ticketReads += 1;
    const url = `${base.replace(/^http/, "ws")}/api/public/bulk/ws/bulk-processing/j1?token=t`;
    json(200, { job_id: "j1", websocket_url: url, expires_in: 300 });
  } else {
    json(404, { success: false, error: "not_found", message: "no route" });
  }
});

server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
  if (scenario.socket === "refuse") {
    // A proxy that does not speak WebSocket: a plain 404.
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  sockets.handleUpgrade(req, socket, head, (ws) => {
    ws.send(JSON.stringify({ type: "progress", job_id: "j1", progress: 50, stage: "Embedding", contentProcessed: 0, embeddings: 0, status: "processing" }));
    if (scenario.socket === "drop") ws.terminate();
    if (scenario.socket === "complete") {
      setTimeout(() => {
        done = true;
        ws.send(JSON.stringify({ type: "completed", job_id: "j1", progress: 100, stage: "Completed", result: { total_items: 1, completed_items: 1, failed_items: 0, processing_time: 1 } }));
        ws.close(1000);
      }, 100);
    }
  });
});

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  for (const ws of sockets.clients) ws.terminate();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function reset(next: Scenario): { client: BulkProcessingClient; waits: number[] } {
  scenario = next;
  done = false;
  statusReads = 0;
  ticketReads = 0;
  const waits: number[] = [];
  const client = new BulkProcessingClient(base, "rc_test", { sleep: async (ms) => void waits.push(ms) });
  return { client, waits };
}

test("wait follows the socket to the end, then reads the status once", async () => {
  const { client, waits } = reset({ ticket: "ok", socket: "complete", pollsBeforeDone: 1000 });
  const status = await client.wait("j1", 10, 5000);
  assert.equal(status.status, "completed");
  assert.equal(statusReads, 2, "once before the socket, once after its end");
  assert.equal(ticketReads, 1);
  assert.deepEqual(waits, [], "no polling");
});

test("a finished job is answered at once, without a socket", async () => {
  const { client } = reset({ ticket: "ok", socket: "complete", pollsBeforeDone: 0 });
  assert.equal((await client.wait("j1", 10)).status, "completed");
  assert.equal(statusReads, 1);
  assert.equal(ticketReads, 0);
});

for (const [name, next] of [
  ["without a ticket route", { ticket: "missing", socket: "complete", pollsBeforeDone: 4 }],
  ["when the socket is refused", { ticket: "ok", socket: "refuse", pollsBeforeDone: 4 }],
  ["when the socket drops before the end", { ticket: "ok", socket: "drop", pollsBeforeDone: 4 }],
] as const) {
  test(`wait polls ${name}`, async () => {
    const { client, waits } = reset(next);
    const status = await client.wait("j1", 10, 5000);
    assert.equal(status.status, "completed");
    assert.equal(statusReads, 5);
    assert.deepEqual(waits, [10, 10, 10]);
  });
}

test("the timeout holds while following the socket", async () => {
  const { client } = reset({ ticket: "ok", socket: "silent", pollsBeforeDone: 1000 });
  const started = Date.now();
  await assert.rejects(client.wait("j1", 10, 300), /still processing after 300 ms/);
  assert.ok(Date.now() - started < 3000, `gave up after ${Date.now() - started} ms`);
  assert.equal(statusReads, 2);
  assert.equal(ticketReads, 1);
});

const url = process.env.RAGCAST_URL;
const key = process.env.RAGCAST_API_KEY;
const live = { skip: !url || !key ? "RAGCAST_URL and RAGCAST_API_KEY name no server" : false };

test("wait on a live server follows the job's socket", live, async () => {
  const seen: string[] = [];
  const counting: typeof fetch = (input, init) => {
    seen.push(String(input));
    return fetch(input, init);
  };
  const client = new BulkProcessingClient(url!, key!, { fetch: counting });
  const notes = "1\n00:00:01,000 --> 00:00:04,000\nThe keeper polished the great lens at dusk.\n";
  const doc = await client.upload(new Blob([notes], { type: "application/x-subrip" }), "keeper.srt");
  const jobId = `ts-wait-${Date.now()}`;
  await client.startProcessing({
    job_id: jobId,
    platform: "documents",
    input_method: "upload",
    uploaded_documents: [doc.document_id],
    embedding_model: { id: "local" },
    vector_db: { id: "chroma" },
  });
  const status = await client.wait(jobId, 50, 120_000);
  assert.equal(status.status, "completed");
  assert.equal(status.result?.completed_items, 1);
  // Polling every 50 ms would read it many times while the job indexes.
  const reads = seen.filter((u) => u.endsWith(`/job/${jobId}/status`)).length;
  assert.ok(reads <= 2, `${reads} status reads`);
});

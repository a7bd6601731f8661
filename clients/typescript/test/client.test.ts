// The whole client against a live ragcast server: RAGCAST_URL and RAGCAST_API_KEY
// (scripts/test-typescript.sh starts one with a fresh key).

import assert from "node:assert/strict";
import { test } from "node:test";

import { BulkProcessingClient, NotFoundError, type ProgressMessage, ValidationError } from "../src/index.js";

const url = process.env.RAGCAST_URL;
const key = process.env.RAGCAST_API_KEY;
const live = { skip: !url || !key ? "RAGCAST_URL and RAGCAST_API_KEY name no server" : false };

const NOTES = `1
00:00:01,000 --> 00:00:04,000
The lighthouse keeper climbed the spiral stairs at dusk.

2
00:01:05,000 --> 00:01:09,500
Every evening he polished the great lens until it shone.
`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("upload, process, follow progress, export, download and search", live, async () => {
  const client = new BulkProcessingClient(url!, key!);
  const doc = await client.upload(new Blob([NOTES], { type: "application/x-subrip" }), "lighthouse.srt");
  assert.match(doc.document_id, /\S/);
  assert.equal(doc.filename, "lighthouse.srt");

  const jobId = `ts-${Date.now()}`;
  const job = await client.startProcessing({
    job_id: jobId,
    platform: "documents",
    input_method: "upload",
    selected_content: [],
    uploaded_documents: [doc.document_id],
    embedding_model: { id: "local", label: "MiniLM" },
    vector_db: { id: "chroma", label: "Chroma" },
    settings: { chunkSize: 256, chunkOverlap: 32, maxTokens: 8192 },
  });
  assert.equal(job.success, true);
  assert.match(job.websocket_url, /^ws:\/\/.*\?token=/);

  const messages: ProgressMessage[] = [];
  for await (const message of client.monitor(jobId, job.websocket_url)) messages.push(message);
  assert.equal(messages[0]!.type, "progress");
  const last = messages.at(-1)!;
  assert.equal(last.type, "completed");
  if (last.type === "completed") assert.equal(last.result.completed_items, 1);
  const progress = messages.filter((m) => m.type === "progress").map((m) => m.progress);
  assert.deepEqual(progress, [...progress].sort((a, b) => a - b), "progress never goes backwards");

  // The contract's callback style, with the API key: a finished job sends its end.
  const seen = await new Promise<ProgressMessage[]>((resolve, reject) => {
    const got: ProgressMessage[] = [];
    const ws = client.connectToProgress(jobId, (data) => got.push(data));
    ws.on("close", () => resolve(got));
    ws.on("error", reject);
  });
  assert.deepEqual(seen.map((m) => m.type), ["completed"]);

  const status = await client.getStatus(jobId);
  assert.equal(status.status, "completed");
  assert.equal(status.progress, 100);
  assert.equal((await client.getItems(jobId)).items[0]!.stage, "indexed");
  assert.ok((await client.listJobs()).jobs.some((j) => j.job_id === jobId));

  const started = await client.exportResults(jobId, "json");
  let state = await client.exportStatus(started.export_id);
  while (state.status !== "completed") {
    assert.notEqual(state.status, "failed", state.error ?? "");
    await sleep(100);
    state = await client.exportStatus(started.export_id);
  }
  const file = await client.download(started.export_id);
  assert.equal(file.byteLength, state.file_size);
  const exported = JSON.parse(new TextDecoder().decode(file)) as { count: number; chunks: { text: string }[] };
  assert.ok(exported.count >= 1);
  assert.match(exported.chunks.map((c) => c.text).join(" "), /lighthouse/i);

  const hits = await client.search("who polished the lens", { job_id: jobId, top_k: 1 });
  assert.equal(hits.results.length, 1);
  assert.match(hits.results[0]!.text, /lens/);
  assert.equal(hits.results[0]!.source, "lighthouse.srt");
  assert.ok((hits.results[0]!.start_s ?? -1) >= 0);
  const words = await client.search("lens", { job_id: jobId, mode: "lexical", context: 1 });
  assert.equal(words.mode, "lexical");
  assert.match(words.results[0]!.context!.text, /lens/);

  // scores are 0-1 on a fixed scale; min_score keeps the hits at or over it
  const all = await client.search("who polished the lens", { job_id: jobId });
  assert.ok(all.results.every((h) => h.score > 0 && h.score <= 1));
  const best = all.results[0]!.score;
  const high = await client.search("who polished the lens", { job_id: jobId, min_score: best });
  assert.ok(high.results.length >= 1 && high.results.every((h) => h.score >= best));
  // subtitles carry no recogniser confidence: a min_confidence leaves them out
  assert.equal(all.results[0]!.confidence ?? null, null);
  const sure = await client.search("who polished the lens", { job_id: jobId, min_confidence: 0.5 });
  assert.equal(sure.results.length, 0);
  await assert.rejects(client.search("lens", { min_score: 2 }), (error: unknown) => {
    assert.ok(error instanceof ValidationError);
    assert.equal(error.details?.field, "min_score");
    return true;
  });
});

test("errors carry the contract's body", live, async () => {
  const client = new BulkProcessingClient(url!, key!);
  await assert.rejects(client.getStatus("no-such-job"), NotFoundError);
  await assert.rejects(
    client.startProcessing({
      platform: "documents",
      input_method: "upload",
      uploaded_documents: [],
      embedding_model: { id: "local" },
      vector_db: { id: "chroma" },
    }),
    (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.details?.field, "uploaded_documents");
      return true;
    },
  );
  const socket = client.monitor("no-such-job");
  await assert.rejects(socket.next(), NotFoundError);
});

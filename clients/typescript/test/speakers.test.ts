// An item's transcript (json, srt, vtt, txt) and its speakers' names: the requests against
// a scripted local server, then a diarized job of two real speakers on a live server
// (RAGCAST_URL, RAGCAST_API_KEY; the recordings of shared/data or RAGCAST_TEST_DATA).

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { BulkProcessingClient, NotFoundError, type TranscriptFormat, ValidationError } from "../src/index.js";

const url = process.env.RAGCAST_URL;
const key = process.env.RAGCAST_API_KEY;
// dist/test/ of clients/typescript: the repository's parent holds shared/data
const DATA = process.env.RAGCAST_TEST_DATA ?? fileURLToPath(new URL("../../../../../shared/data/", import.meta.url));
const CLIPS = ["clip05.wav", "clip02.wav"].map((name) => `${DATA}/${name}`);
const live = {
  skip: !url || !key ? "RAGCAST_URL and RAGCAST_API_KEY name no server" : !CLIPS.every((p) => existsSync(p)) ? `no recordings in ${DATA}` : false,
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The PCM data of a WAV file and its format chunk. */
function wavParts(bytes: Buffer): { fmt: Buffer; data: Buffer } {
  let fmt: Buffer | undefined;
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = bytes.toString("ascii", at, at + 4);
    const size = bytes.readUInt32LE(at + 4);
    const body = bytes.subarray(at + 8, at + 8 + size);
    if (id === "fmt ") fmt = body;
    if (id === "data" && fmt) return { fmt, data: body };
    at += 8 + size + (size % 2);
  }
  throw new Error("not a WAV file with fmt and data chunks");
}

/** One WAV of the recordings one after another (all of one format): a conversation. */
function joinWavs(paths: string[]): Buffer {
  const parts = paths.map((p) => wavParts(readFileSync(p)));
  const fmt = parts[0]!.fmt;
  assert.ok(parts.every((p) => p.fmt.equals(fmt)), "the recordings differ in format");
  const data = Buffer.concat(parts.map((p) => p.data));
  const header = Buffer.alloc(12 + 8 + fmt.length + 8);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(header.length - 8 + data.length, 4);
  header.write("WAVEfmt ", 8, "ascii");
  header.writeUInt32LE(fmt.length, 16);
  fmt.copy(header, 20);
  header.write("data", 20 + fmt.length, "ascii");
  header.writeUInt32LE(data.length, 24 + fmt.length);
  return Buffer.concat([header, data]);
}

test("transcript and nameSpeakers send their requests and read text or JSON", async () => {
  const seen: { method: string; url: string; body: string }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", body });
      if (req.url?.endsWith("format=srt")) {
        res.writeHead(200, { "Content-Type": "application/x-subrip; charset=utf-8" });
        res.end("1\n00:00:00,000 --> 00:00:01,000\nHost: Hi\n");
      } else {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ job_id: "j 1", index: 2, speakers: [], segments: [], updated_chunks: 0 }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const client = new BulkProcessingClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, "rc_test");
    assert.equal((await client.transcript("j 1", 2)).job_id, "j 1");
    assert.match(await client.transcript("j 1", 2, "srt"), /Host: Hi/);
    await client.nameSpeakers("j 1", 2, { SPEAKER_00: "Host", SPEAKER_01: null });
    assert.deepEqual(
      seen.map((r) => `${r.method} ${r.url}`),
      [
        "GET /api/public/bulk/job/j%201/items/2/transcript?format=json",
        "GET /api/public/bulk/job/j%201/items/2/transcript?format=srt",
        "PATCH /api/public/bulk/job/j%201/items/2/speakers",
      ],
    );
    assert.deepEqual(JSON.parse(seen[2]!.body), { SPEAKER_00: "Host", SPEAKER_01: null });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test("a diarized job: its transcript in every format, named speakers, search by speaker", live, async () => {
  const client = new BulkProcessingClient(url!, key!);
  const doc = await client.upload(joinWavs(CLIPS), "conversation.wav", "audio/wav");
  const jobId = `ts-talk-${Date.now()}`;
  await client.startProcessing({
    job_id: jobId,
    platform: "documents",
    input_method: "upload",
    uploaded_documents: [doc.document_id],
    embedding_model: { id: "local" },
    vector_db: { id: "chroma" },
    settings: { chunkSize: 48, chunkOverlap: 8, maxTokens: 8192, diarize: true },
  });
  let status = await client.getStatus(jobId);
  for (const started = Date.now(); !["completed", "failed", "cancelled"].includes(status.status); ) {
    assert.ok(Date.now() - started < 240_000, `job still ${status.status}`);
    await sleep(500);
    status = await client.getStatus(jobId);
  }
  assert.equal(status.status, "completed");

  const body = await client.transcript(jobId, 0);
  assert.equal(body.job_id, jobId);
  assert.equal(body.source, "asr");
  assert.deepEqual((body.speakers ?? []).map((s) => s.label), ["SPEAKER_00", "SPEAKER_01"]);
  assert.ok(body.segments.length >= 2);
  assert.ok(body.segments.every((s) => s.speaker === "SPEAKER_00" || s.speaker === "SPEAKER_01"));
  const srt = await client.transcript(jobId, 0, "srt");
  const cues = srt.trim().split("\n\n").map((block) => block.split("\n"));
  assert.ok(cues.every((cue) => /^SPEAKER_0[01]: /.test(cue[2] ?? "")), srt);
  const vtt = await client.transcript(jobId, 0, "vtt");
  assert.ok(vtt.startsWith("WEBVTT"));
  assert.match(vtt, /<v SPEAKER_0[01]>/);
  assert.match(await client.transcript(jobId, 0, "txt"), /^SPEAKER_00: .*Dashwood/);

  const named = await client.nameSpeakers(jobId, 0, { SPEAKER_01: "Guest" });
  assert.deepEqual(named.speakers, [
    { label: "SPEAKER_00", name: "SPEAKER_00" },
    { label: "SPEAKER_01", name: "Guest" },
  ]);
  assert.ok(named.updated_chunks >= 2);
  assert.equal((await client.transcript(jobId, 0)).speakers?.[1]?.name, "Guest");
  assert.match(await client.transcript(jobId, 0, "srt"), /\nGuest: .*Quilter/);
  const hits = await client.search("the apostle of the middle classes", { job_id: jobId, speaker: "Guest" });
  assert.ok(hits.results.length >= 1);
  assert.ok(hits.results.every((h) => h.speaker === "Guest" && (h.speakers ?? []).includes("Guest")));

  await assert.rejects(client.transcript(jobId, 0, "xml" as TranscriptFormat), (error: unknown) => {
    assert.ok(error instanceof ValidationError);
    assert.equal(error.status, 400);
    return true;
  });
  await assert.rejects(client.nameSpeakers(jobId, 0, { SPEAKER_07: "Nobody" }), ValidationError);
  await assert.rejects(client.transcript(jobId, 9, "txt"), NotFoundError);
});

// A job's items page by page: the requests of getItemsPage, iterItems and getItems against
// a scripted local server holding 250 items, and the live server's refusals
// (RAGCAST_URL, RAGCAST_API_KEY).

import assert from "node:assert/strict";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { BulkProcessingClient, NotFoundError, ValidationError } from "../src/index.js";

const url = process.env.RAGCAST_URL;
const key = process.env.RAGCAST_API_KEY;

/** A server answering GET /job/{id}/items from `total` items, as ragcast pages them. */
async function itemsServer(total: number, seen: string[]): Promise<{ url: string; close: () => void }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(req.url ?? "");
    const query = new URL(req.url ?? "/", "http://x").searchParams;
    const limit = Number(query.get("limit") ?? 100);
    const after = query.has("after") ? Number(query.get("after")) : -1;
    const start = query.has("offset") ? Number(query.get("offset")) : after + 1;
    const items = Array.from({ length: Math.max(0, Math.min(limit, total - start)) }, (_, n) => ({ index: start + n, status: "completed" }));
    const more = start + items.length < total;
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ job_id: "j1", items, total, limit, offset: start, next_after: more ? items.at(-1)!.index : null }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

test("getItems gathers every page through the after cursor; getItemsPage asks for one", async () => {
  const seen: string[] = [];
  const server = await itemsServer(250, seen);
  try {
    const client = new BulkProcessingClient(server.url, "rc_test");
    const all = await client.getItems("j1", { pageSize: 100 });
    assert.equal(all.total, 250);
    assert.deepEqual(all.items.map((i) => i.index), Array.from({ length: 250 }, (_, n) => n));
    assert.deepEqual(seen, [
      "/api/public/bulk/job/j1/items?limit=100",
      "/api/public/bulk/job/j1/items?limit=100&after=99",
      "/api/public/bulk/job/j1/items?limit=100&after=199",
    ]);
    seen.length = 0;
    const page = await client.getItemsPage("j1", { limit: 10, offset: 240, status: "completed" });
    assert.equal(page.items.length, 10);
    assert.equal(page.next_after, null);
    assert.deepEqual(seen, ["/api/public/bulk/job/j1/items?limit=10&offset=240&status=completed"]);
    let counted = 0;
    for await (const item of client.iterItems("j1")) counted += item.index >= 0 ? 1 : 0;
    assert.equal(counted, 250);
  } finally {
    server.close();
  }
});

test("the live server refuses a page over 1000 items and a job it does not know", { skip: !url || !key ? "RAGCAST_URL and RAGCAST_API_KEY name no server" : false }, async () => {
  const client = new BulkProcessingClient(url!, key!, { maxRetries: 0 });
  await assert.rejects(client.getItemsPage("no-such-job", { limit: 1001 }), ValidationError);
  await assert.rejects(client.getItems("no-such-job"), NotFoundError);
});

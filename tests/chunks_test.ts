/**
 * The light reader the push-based adapters (`node:net`, `ws`) hand to the
 * bridge: order, pausing at the mark, end, error and cancel.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ChunkQueue, readableFrom } from "../lib/bridge/chunks.ts";

/** A queue over a fake socket that records what the queue asked of it. */
function queue(highWaterMark = 10) {
  const calls: string[] = [];
  const q = new ChunkQueue<Uint8Array | string>({
    pause: () => calls.push("pause"),
    resume: () => calls.push("resume"),
    cancel: () => calls.push("cancel"),
  }, highWaterMark);
  return { q, calls };
}

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

describe("ChunkQueue", () => {
  test("returns chunks in order, the same objects that were pushed", async () => {
    const { q } = queue(1000);
    const a = bytes(3, 1), b = bytes(4, 2);
    q.push(a);
    q.push("text");
    q.push(b);
    assert.equal((await q.read()).value, a);
    assert.equal((await q.read()).value, "text");
    assert.equal((await q.read()).value, b);
  });

  test("a read waiting for data gets the next push", async () => {
    const { q } = queue();
    const pending = q.read();
    const a = bytes(2);
    q.push(a);
    assert.deepEqual(await pending, { done: false, value: a });
  });

  test("pauses the socket at the mark and resumes once below it", async () => {
    const { q, calls } = queue(10);
    q.push(bytes(6));
    assert.deepEqual(calls, []);
    q.push(bytes(6)); // 12 queued, mark 10
    q.push(bytes(6)); // still paused: asked once
    assert.deepEqual(calls, ["pause"]);
    await q.read(); // 12 left
    assert.deepEqual(calls, ["pause"]);
    await q.read(); // 6 left
    assert.deepEqual(calls, ["pause", "resume"]);
  });

  test("counts text by characters towards the mark", () => {
    const { q, calls } = queue(10);
    q.push("12345");
    q.push("67890");
    assert.deepEqual(calls, ["pause"]);
  });

  test("end delivers what is queued first, then done, to every later read", async () => {
    const { q } = queue();
    q.push(bytes(1));
    q.end();
    q.push(bytes(1)); // ignored after end
    assert.equal((await q.read()).done, false);
    assert.equal((await q.read()).done, true);
    assert.equal((await q.read()).done, true);
    assert.equal(q.closed, true);
  });

  test("end wakes a waiting read with done", async () => {
    const { q } = queue();
    const pending = q.read();
    q.end();
    assert.equal((await pending).done, true);
  });

  test("error rejects the waiting read and every later one", async () => {
    const { q } = queue();
    const pending = q.read();
    q.error(new Error("reset"));
    await assert.rejects(pending, /reset/);
    await assert.rejects(q.read(), /reset/);
  });

  test("cancel drops the queue, tells the socket once and ends reads", async () => {
    const { q, calls } = queue(10);
    q.push(bytes(20));
    const result = await q.read();
    assert.equal(result.done, false);
    q.push(bytes(20));
    await q.cancel();
    await q.cancel();
    assert.deepEqual(calls, ["pause", "resume", "pause", "cancel"]);
    assert.equal((await q.read()).done, true);
  });

  test("readableFrom() gives the same chunks as a ReadableStream", async () => {
    const { q } = queue(100);
    q.push(bytes(2, 7));
    q.push(bytes(3, 8));
    q.end();
    const seen: number[][] = [];
    for await (const chunk of readableFrom(q)) seen.push([...(chunk as Uint8Array)]);
    assert.deepEqual(seen, [[7, 7], [8, 8, 8]]);
  });
});

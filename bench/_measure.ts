/**
 * The measurements. Each takes an {@link Endpoint}, so the same code times a
 * raw TCP run and a proxy run; all loops stop at a count and at a deadline.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { performance } from "node:perf_hooks";
import { type Endpoint, type Link, open } from "./_client.ts";

/** Message size for the throughput runs. */
export const CHUNK = 64 * 1024;
/** Message size for the echo runs. */
export const SMALL = 64;
const OPEN_MS = 15_000;
const REPLY_MS = 15_000;
const CLOSE_MS = 15_000;

const now = () => performance.now();
const ECHO = Buffer.from("E");
const SMALL_MSG = Buffer.alloc(SMALL, 0x61);
const ECHO_MSG = Buffer.concat([ECHO, SMALL_MSG]);

function header(mode: "S" | "R", bytes: number): Buffer {
  const head = Buffer.alloc(9);
  head.write(mode, 0, "latin1");
  head.writeBigUInt64BE(BigInt(bytes), 1);
  return head;
}

/** Time allowed for moving `bytes` even at 2 MiB/s: a hang, not a slow run. */
function budget(bytes: number): number {
  return 30_000 + bytes / 2048;
}

/** Opens a link, runs `fn` on it, closes it; a failed close is an error too. */
async function withLink<T>(ep: Endpoint, fn: (link: Link) => Promise<T>): Promise<T> {
  const link = await open(ep, OPEN_MS);
  let result: T;
  try {
    result = await fn(link);
  } catch (error) {
    await link.close(CLOSE_MS).catch(() => {});
    throw error;
  }
  await link.close(CLOSE_MS);
  return result;
}

/** Upload in MiB/s: from the first byte sent until the sink acks the last. */
export function upload(ep: Endpoint, bytes: number): Promise<number> {
  return withLink(ep, async (link) => {
    const block = Buffer.alloc(CHUNK, 0xa5);
    const deadline = now() + budget(bytes);
    const start = now();
    link.send(header("S", bytes));
    for (let sent = 0; sent < bytes; sent += CHUNK) {
      if (now() > deadline) throw new Error(`Upload stalled after ${sent} bytes`);
      const n = Math.min(CHUNK, bytes - sent);
      const room = link.send(n === CHUNK ? block : block.subarray(0, n));
      if (room) await room;
    }
    await link.until(1, Math.max(1, deadline - now()));
    return bytes / 1048576 / ((now() - start) / 1000);
  });
}

/** Download in MiB/s: from the request until the last byte has arrived. */
export function download(ep: Endpoint, bytes: number): Promise<number> {
  return withLink(ep, async (link) => {
    const start = now();
    link.send(header("R", bytes));
    await link.until(bytes, budget(bytes));
    return bytes / 1048576 / ((now() - start) / 1000);
  });
}

/** Round-trip times in microseconds. */
export interface Latency {
  p50: number;
  p99: number;
  mean: number;
  count: number;
}

/** One 64-byte message at a time, each waiting for its echo. */
export function latency(
  ep: Endpoint,
  rounds: number,
  warmup: number,
  capMs: number,
): Promise<Latency> {
  return withLink(ep, async (link) => {
    link.send(ECHO);
    const samples: number[] = [];
    const deadline = now() + capMs;
    let expected = 0;
    for (let i = 0; i < warmup + rounds && now() < deadline; i++) {
      const t0 = now();
      link.send(SMALL_MSG);
      expected += SMALL;
      await link.until(expected, REPLY_MS);
      if (i >= warmup) samples.push((now() - t0) * 1000);
    }
    if (samples.length === 0) throw new Error("No latency samples within the time limit");
    samples.sort((a, b) => a - b);
    const at = (q: number) =>
      samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    return { p50: at(0.5), p99: at(0.99), mean, count: samples.length };
  });
}

/** What a {@link pool} run did. */
export interface PoolResult {
  done: number;
  failed: number;
  ms: number;
  firstError?: unknown;
}

/**
 * Runs `task` up to `count` times on `parallel` workers until `capMs` has
 * passed. Stops at the first error unless `keepGoing`.
 */
export async function pool(
  count: number,
  parallel: number,
  capMs: number,
  keepGoing: boolean,
  task: () => Promise<void>,
): Promise<PoolResult> {
  const result: PoolResult = { done: 0, failed: 0, ms: 0 };
  const start = now();
  let started = 0;
  const worker = async () => {
    while (started < count && now() - start < capMs && (keepGoing || result.failed === 0)) {
      started++;
      try {
        await task();
        result.done++;
      } catch (error) {
        result.failed++;
        result.firstError ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  result.ms = now() - start;
  return result;
}

/** Connections per second for connect + one echo + close. */
export async function handshakes(
  ep: Endpoint,
  count: number,
  parallel: number,
  capMs: number,
): Promise<{ perSecond: number; count: number }> {
  const result = await pool(count, parallel, capMs, false, () =>
    withLink(ep, async (link) => {
      link.send(ECHO_MSG);
      await link.until(SMALL, REPLY_MS);
    }));
  if (result.firstError) throw result.firstError;
  return { perSecond: result.done / (result.ms / 1000), count: result.done };
}

/**
 * Opens `count` links (128 handshakes in flight at most), each echoing one
 * checked 64-byte message and staying open; runs `during` while all are
 * open, then closes them. Throws unless every connection succeeded.
 */
export async function holdMany<T>(
  ep: Endpoint,
  count: number,
  capMs: number,
  during: () => Promise<T>,
): Promise<{ ms: number; during: T }> {
  const links: Link[] = [];
  const opened = await pool(count, 128, capMs, true, async () => {
    const link = await open(ep, OPEN_MS, true);
    links.push(link);
    link.send(ECHO_MSG);
    await link.until(SMALL, REPLY_MS);
    if (!Buffer.concat(link.data).equals(SMALL_MSG)) throw new Error("Echo came back changed");
  });
  let result: T | undefined;
  if (opened.done === count) result = await during();
  const closed = await pool(links.length, 256, 120_000, true, () => links.pop()!.close(CLOSE_MS));
  if (opened.done < count) {
    throw new Error(
      `Only ${opened.done} of ${count} connections succeeded` +
        (opened.firstError ? `; first error: ${String(opened.firstError)}` : ""),
    );
  }
  if (closed.firstError) throw closed.firstError;
  return { ms: opened.ms, during: result as T };
}

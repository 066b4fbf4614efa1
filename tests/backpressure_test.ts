/**
 * Backpressure both ways with the proxy as a separate process: a reader that
 * stops must hold the writer on the other side back, keep the proxy's memory
 * bounded, and lose nothing once it reads again.
 *
 * What the proxy holds is what the writer wrote, less what the test sockets
 * still buffer or have read, less what the kernel queues on the four loopback
 * sockets of the path (read from /proc/net/tcp: loopback buffers can hold
 * tens of MiB, and they are not the proxy's memory).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import type net from "node:net";
import { describe, test } from "node:test";
import { closePayload, encodeFrame, parseClose, rawConnect } from "./_frames.ts";
import { HIGH_WATER_MARK, SEND_HIGH_WATER_MARK } from "../lib/limits.ts";
import { RUNTIME, sleep, spawnCli, startTcpServer, waitFor, within } from "./_harness.ts";

/** Per test: Bun's default is 5 s. */
const T = { timeout: 60000 };
const CHUNK = 64 * 1024;
/** A flow that has not moved for this long is held back. */
const QUIET_MS = 500;
/** How long a flow may take to stall on a loaded machine. */
const STALL_DEADLINE_MS = 15000;
/** The most one socket read returns: Bun reads up to 512 KiB at a time, Node and Deno 64 KiB. */
const MAX_READ = RUNTIME === "bun" ? 512 * 1024 : 64 * 1024;
/**
 * One direction's queues (read side, then write side), each filled up to one
 * read past its mark, plus one read or write of slack for the test's sockets.
 */
const MAX_PROXY_HELD = HIGH_WATER_MARK + SEND_HIGH_WATER_MARK + 3 * MAX_READ;
/** RSS also grows by garbage not yet collected; an unbounded proxy grows with the flow. */
const MAX_RSS_GROWTH = 16 * 1024 * 1024;
/** A write that has not drained for this long is stalled. */
const STALL_MS = 1500;
/** Pings enough to take a proxy that queues every pong far past PING_RSS_GROWTH. */
const PING_FLOOD_BYTES = 32 * 1024 * 1024;
/** A runtime's heap grows with throughput alone for a while (Deno's the most). */
const PING_RSS_GROWTH = 48 * 1024 * 1024;

/** Bytes of the endless test stream starting at `offset`. */
function streamBytes(offset: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = ((offset + i) * 7) & 0xff;
  return out;
}

/** Checks bytes against the stream at `offset`; returns the first bad index. */
function firstMismatch(bytes: Uint8Array, offset: number): number {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== (((offset + i) * 7) & 0xff)) return i;
  return -1;
}

function rssOf(pid: number): number | undefined {
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * Bytes the kernel queues (sent and unacknowledged, or received and unread) on
 * the established TCP sockets with a local or remote port in `ports`, or
 * undefined without /proc/net/tcp.
 */
function kernelQueued(ports: number[]): number | undefined {
  let total = 0;
  let found = false;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue;
    }
    found = true;
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue ...
      const [, local, remote, state, queues] = line.trim().split(/\s+/);
      if (!queues || state === "0A") continue; // 0A: listening
      const port = (addr: string) => parseInt(addr.split(":")[1]!, 16);
      if (!ports.includes(port(local!)) && !ports.includes(port(remote!))) continue;
      const [tx, rx] = queues.split(":").map((h) => parseInt(h, 16));
      total += tx! + rx!;
    }
  }
  return found ? total : undefined;
}

/** Resolves once `count()` has not changed for QUIET_MS; false if it never settles. */
async function settled(count: () => number): Promise<boolean> {
  const deadline = Date.now() + STALL_DEADLINE_MS;
  let last = count();
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(100);
    if (count() !== last) [last, since] = [count(), Date.now()];
    else if (Date.now() - since >= QUIET_MS) return true;
  }
  return false;
}

/** Asserts the proxy holds at most one direction's queues, and its RSS stayed bounded. */
function assertHeld(held: number | undefined, rssBefore?: number, rssAfter?: number): void {
  if (held !== undefined) {
    assert.ok(held <= MAX_PROXY_HELD, `proxy holds ${held} bytes (at most ${MAX_PROXY_HELD})`);
  }
  if (rssBefore && rssAfter) {
    assert.ok(rssAfter - rssBefore < MAX_RSS_GROWTH, `proxy RSS grew ${rssAfter - rssBefore}`);
  }
}

/** Writes the stream until `stop()` is called, waiting for drain. */
function flood(sock: net.Socket) {
  let written = 0;
  let stopped = false;
  const done = (async () => {
    while (!stopped && !sock.destroyed) {
      const ok = sock.write(streamBytes(written, CHUNK));
      written += CHUNK;
      if (!ok) await new Promise((r) => sock.once("drain", r));
    }
  })();
  return { written: () => written, stop: () => ((stopped = true), done) };
}

describe("backpressure", () => {
  test("a client that stops reading holds the target back", T, async () => {
    let source: ReturnType<typeof flood> | undefined;
    let targetSock: net.Socket | undefined;
    const target = await startTcpServer((sock) => {
      targetSock = sock;
      source = flood(sock);
    });
    const proxy = spawnCli(["127.0.0.1:0", `127.0.0.1:${target.port}`]);
    try {
      const port = await proxy.port();
      const raw = await rawConnect(port, { "Sec-WebSocket-Protocol": "binary" });
      raw.sock.pause();
      await waitFor(() => source !== undefined, 10000, "target connection");
      const rssBefore = rssOf(proxy.child.pid!);
      assert.ok(
        await settled(source!.written),
        "the target kept writing while the client was stalled",
      );
      const rssAfter = rssOf(proxy.child.pid!);
      // The client's bytesRead includes the response head and frame heads: a slight underestimate.
      const kernel = kernelQueued([port, target.port]);
      const held = kernel === undefined
        ? undefined
        : source!.written() - targetSock!.writableLength - kernel - raw.sock.bytesRead;
      assertHeld(held, rssBefore, rssAfter);
      // Stop the flood, then read everything: nothing may be lost.
      const stopping = source!.stop();
      raw.sock.resume();
      await stopping;
      targetSock!.end();
      let received = 0;
      for (let i = 0; i < 100_000; i++) {
        const frame = await within(10000, raw.next(), "frame");
        assert.ok(frame, "connection ended without a close frame");
        if (frame.opcode === 0x8) {
          assert.deepEqual(parseClose(frame), { code: 1000, reason: "Target closed" });
          break;
        }
        assert.equal(firstMismatch(frame.payload, received), -1, `corrupt at ${received}`);
        received += frame.payload.byteLength;
      }
      assert.equal(received, source!.written());
      raw.sock.destroy();
    } finally {
      await proxy.kill();
      await target.close();
    }
  });

  // With pings, the pongs' comings and goings must not resume a socket paused for the target.
  for (const pings of [false, true]) {
    const what = pings ? " (a ping after every frame)" : "";
    test(`a target that stops reading holds the client back${what}`, T, async () => {
      let targetSock: net.Socket | undefined;
      const target = await startTcpServer((sock) => {
        targetSock = sock;
        sock.pause();
      });
      const proxy = spawnCli(["127.0.0.1:0", `127.0.0.1:${target.port}`]);
      try {
        const port = await proxy.port();
        const raw = await rawConnect(port, { "Sec-WebSocket-Protocol": "binary" });
        const rssBefore = rssOf(proxy.child.pid!);
        let sent = 0;
        let frameBytes = 0;
        let stopped = false;
        const pushing = (async () => {
          while (!stopped && !raw.sock.destroyed) {
            if (pings) raw.sock.write(encodeFrame(0x9, new Uint8Array(4)));
            const frame = encodeFrame(0x2, streamBytes(sent, CHUNK));
            const ok = raw.sock.write(frame);
            sent += CHUNK;
            frameBytes += frame.byteLength;
            if (!ok) await new Promise((r) => raw.sock.once("drain", r));
          }
        })();
        assert.ok(await settled(() => sent), "the client was never held back");
        const rssAfter = rssOf(proxy.child.pid!);
        // Frame heads and masks count as held: a slight overestimate.
        const kernel = kernelQueued([port, target.port]);
        const held = kernel === undefined
          ? undefined
          : frameBytes - raw.sock.writableLength - kernel - targetSock!.bytesRead;
        assertHeld(held, rssBefore, rssAfter);
        stopped = true;
        // Let the target read, then close from the client: all bytes arrive.
        let received = 0;
        let bad = -1;
        targetSock!.on("data", (d: Uint8Array) => {
          const at = firstMismatch(d, received);
          if (at >= 0 && bad < 0) bad = received + at;
          received += d.byteLength;
        });
        const ended = new Promise((r) => targetSock!.once("end", r));
        targetSock!.resume();
        await within(20000, pushing, "client writes drain");
        raw.send(encodeFrame(0x8, closePayload(1000)));
        await within(20000, ended, "target EOF");
        assert.equal(bad, -1, `corrupt at ${bad}`);
        assert.equal(received, sent);
        raw.sock.destroy();
      } finally {
        await proxy.kill();
        await target.close();
      }
    });
  }

  test("a client whose send buffer is over the mark is not read once it pings", T, async () => {
    let source: ReturnType<typeof flood> | undefined;
    let received = 0;
    const target = await startTcpServer((sock) => {
      source = flood(sock);
      sock.on("data", (d: Uint8Array) => (received += d.byteLength));
    });
    const proxy = spawnCli(["127.0.0.1:0", `127.0.0.1:${target.port}`]);
    try {
      const raw = await rawConnect(await proxy.port(), { "Sec-WebSocket-Protocol": "binary" });
      raw.sock.pause();
      await sleep(STALL_MS); // the target's flood fills the client's send buffer
      // The pong goes over the mark: the client is not read until it drains.
      raw.send(encodeFrame(0x9, new Uint8Array(4)));
      const sent = 4 * 1024 * 1024;
      for (let at = 0; at < sent; at += CHUNK) raw.send(encodeFrame(0x2, new Uint8Array(CHUNK)));
      await sleep(1000);
      // At most the rest of the read that brought the ping got through.
      assert.ok(received < sent / 4, `${received} bytes reached the target`);
      // Once the client reads, so is it.
      const stopping = source!.stop();
      raw.sock.removeAllListeners("data");
      raw.sock.on("data", () => {});
      raw.sock.resume();
      await stopping;
      await waitFor(() => received === sent, 20000, "the client's data at the target");
      raw.sock.destroy();
    } finally {
      await proxy.kill();
      await target.close();
    }
  });

  // Each ping makes the proxy write a pong of its own; none may pile up.
  for (const size of [125, 0]) {
    test(`a client that floods ${size}-byte pings and never reads is held`, T, async () => {
      const target = await startTcpServer(() => {});
      const proxy = spawnCli(["127.0.0.1:0", `127.0.0.1:${target.port}`]);
      try {
        const raw = await rawConnect(await proxy.port(), { "Sec-WebSocket-Protocol": "binary" });
        raw.sock.pause();
        const ping = encodeFrame(0x9, new Uint8Array(size).fill(7));
        const batch = new Uint8Array(
          Buffer.concat(Array(Math.ceil(CHUNK / ping.length)).fill(ping)),
        );
        // A warm-up first: the heap of a busy proxy grows for a while, then levels off.
        await floodUntilStalled(raw.sock, batch, PING_FLOOD_BYTES / 2);
        const rssBefore = rssOf(proxy.child.pid!);
        await floodUntilStalled(raw.sock, batch, PING_FLOOD_BYTES);
        const rssAfter = rssOf(proxy.child.pid!);
        if (rssBefore && rssAfter) {
          assert.ok(
            rssAfter - rssBefore < PING_RSS_GROWTH,
            `proxy RSS grew ${rssAfter - rssBefore}`,
          );
        }
        // Once the client reads, the latest ping is answered.
        raw.send(encodeFrame(0x9, new TextEncoder().encode("last")));
        raw.sock.resume();
        for (let i = 0; i < PING_FLOOD_BYTES; i++) {
          const frame = await within(20000, raw.next(), "pong");
          assert.equal(frame?.opcode, 0xa);
          if (new TextDecoder().decode(frame.payload) === "last") break;
        }
        raw.sock.destroy();
      } finally {
        await proxy.kill();
        await target.close();
      }
    });
  }
});

/** Writes `batch` until `limit` bytes are sent or a write does not drain within STALL_MS. */
async function floodUntilStalled(sock: net.Socket, batch: Uint8Array, limit: number) {
  let sent = 0;
  while (sent < limit) {
    sent += batch.length;
    if (sock.write(batch)) continue;
    const drained = await Promise.race([
      new Promise((r) => sock.once("drain", () => r(true))),
      sleep(STALL_MS).then(() => false),
    ]);
    if (!drained) return { sent, stalled: true };
  }
  return { sent, stalled: false };
}

/**
 * Backpressure both ways with the proxy as a separate process: a reader that
 * stops must hold the writer on the other side back, keep the proxy's memory
 * bounded, and lose nothing once it reads again.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import type net from "node:net";
import { describe, test } from "node:test";
import { closePayload, encodeFrame, parseClose, rawConnect } from "./_frames.ts";
import { sleep, spawnCli, startTcpServer, waitFor, within } from "./_harness.ts";

const CHUNK = 64 * 1024;
const STALL_MS = 1500;
/** Loopback kernel buffers can hold tens of MiB; an unbounded proxy takes GiBs. */
const MAX_IN_FLIGHT = 64 * 1024 * 1024;
const MAX_RSS_GROWTH = 32 * 1024 * 1024;
/** Past bun's 5 s default: these wait on purpose, and a loaded machine is slow. */
const T = { timeout: 30000 };
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
  test("a client that stops reading holds the target back", async () => {
    let source: ReturnType<typeof flood> | undefined;
    let targetSock: net.Socket | undefined;
    const target = await startTcpServer((sock) => {
      targetSock = sock;
      source = flood(sock);
    });
    const proxy = spawnCli(["127.0.0.1:0", `127.0.0.1:${target.port}`]);
    try {
      const raw = await rawConnect(await proxy.port(), { "Sec-WebSocket-Protocol": "binary" });
      raw.sock.pause();
      const rssBefore = rssOf(proxy.child.pid!);
      await sleep(STALL_MS);
      const early = source!.written();
      await sleep(500);
      const held = source!.written();
      const rssAfter = rssOf(proxy.child.pid!);
      assert.equal(held, early, "the target kept writing while the client was stalled");
      assert.ok(held < MAX_IN_FLIGHT, `${held} bytes in flight`);
      if (rssBefore && rssAfter) {
        assert.ok(rssAfter - rssBefore < MAX_RSS_GROWTH, `proxy RSS grew ${rssAfter - rssBefore}`);
      }
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
    test(`a target that stops reading holds the client back${what}`, async () => {
      let targetSock: net.Socket | undefined;
      const target = await startTcpServer((sock) => {
        targetSock = sock;
        sock.pause();
      });
      const proxy = spawnCli(["127.0.0.1:0", `127.0.0.1:${target.port}`]);
      try {
        const raw = await rawConnect(await proxy.port(), { "Sec-WebSocket-Protocol": "binary" });
        let sent = 0;
        let stalled = false;
        const deadline = Date.now() + STALL_MS;
        const rssBefore = rssOf(proxy.child.pid!);
        while (Date.now() < deadline) {
          if (pings) raw.sock.write(encodeFrame(0x9, new Uint8Array(4)));
          const ok = raw.sock.write(encodeFrame(0x2, streamBytes(sent, CHUNK)));
          sent += CHUNK;
          if (!ok) {
            const drained = await Promise.race([
              new Promise((r) => raw.sock.once("drain", () => r(true))),
              sleep(deadline - Date.now()).then(() => false),
            ]);
            if (!drained) stalled = true;
          }
        }
        const rssAfter = rssOf(proxy.child.pid!);
        assert.ok(stalled, "the client was never held back");
        assert.ok(sent < MAX_IN_FLIGHT, `${sent} bytes in flight`);
        if (rssBefore && rssAfter) {
          assert.ok(
            rssAfter - rssBefore < MAX_RSS_GROWTH,
            `proxy RSS grew ${rssAfter - rssBefore}`,
          );
        }
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

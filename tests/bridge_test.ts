/**
 * The bridge's close rules, flow control, heartbeat and stats
 * (`lib/bridge/bridge.ts`), driven over in-memory WebSocket and target
 * connections: each rule is checked on its own, without socket timing.
 * The socket-level behaviour is covered by proxy_test.ts and session_test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bridge, type BridgeOptions, type BridgeStats } from "../lib/bridge/bridge.ts";
import { StopSignal } from "../lib/bridge/stop_signal.ts";
import { ChunkQueue, READY } from "../lib/bridge/chunks.ts";
import { CLOSE_REASON } from "../lib/protocol/close_codes.ts";
import type { ChunkWriter, CloseInfo, Conn, WsConn } from "../lib/types.ts";
import { sleep, waitFor, within } from "./_harness.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** A reader fed by the test: counts reads and records what it asks of its "socket". */
class MemReader<T extends Uint8Array | string> extends ChunkQueue<T> {
  reads = 0;
  cancelled = false;
  readonly calls: string[];

  constructor(highWaterMark = 1 << 20) {
    const calls: string[] = [];
    super({
      pause: () => calls.push("pause"),
      resume: () => calls.push("resume"),
      cancel: () => calls.push("cancel"),
    }, highWaterMark);
    this.calls = calls;
  }

  override read(): Promise<ReadableStreamReadResult<T>> {
    this.reads++;
    return super.read();
  }

  override cancel(): Promise<void> {
    this.cancelled = true;
    return super.cancel();
  }
}

/** A writer that records what it is given; `hold()` keeps `ready` pending until `release()`. */
class MemWriter<T> implements ChunkWriter<T> {
  ready: Promise<void> = READY;
  readonly chunks: T[] = [];
  closedAt = 0;
  aborted = false;
  #release = () => {};

  constructor(readonly name: string, readonly log: string[]) {}

  hold(): void {
    this.ready = new Promise((resolve) => (this.#release = resolve));
  }

  release(): void {
    this.ready = READY;
    this.#release();
  }

  /** The sink has failed: `ready` rejects from now on. */
  fail(error: Error): void {
    this.ready = Promise.reject(error);
    this.ready.catch(() => {});
  }

  write(chunk: T): Promise<void> {
    if (this.closedAt || this.aborted) throw new Error(`${this.name}: write after close`);
    this.chunks.push(chunk);
    this.log.push(`${this.name} write`);
    return READY;
  }

  close(): Promise<void> {
    this.closedAt = performance.now();
    this.log.push(`${this.name} close`);
    return READY;
  }

  abort(): Promise<void> {
    this.aborted = true;
    this.log.push(`${this.name} abort`);
    return READY;
  }
}

const noStreams = (): never => {
  throw new Error("the bridge must use reader and writer");
};

/**
 * A WebSocket whose client is the test. A close from either side ends the
 * client's messages (the client answers our close frame) and settles
 * `closed` with the first close code, as the client saw it.
 */
class MemWs implements WsConn {
  readonly reader = new MemReader<Uint8Array | string>(10);
  readonly writer: MemWriter<Uint8Array | string>;
  readonly closed: Promise<CloseInfo>;
  /** Every close() call, in order. */
  readonly closes: CloseInfo[] = [];
  onpong: (() => void) | null = null;
  pings = 0;
  aborted = false;
  #seen = false;
  #settle: (info: CloseInfo) => void = () => {};

  constructor(readonly protocol: string, readonly log: string[], readonly answersPings = false) {
    this.writer = new MemWriter("client", log);
    this.closed = new Promise((resolve) => (this.#settle = resolve));
  }

  get readable(): never {
    return noStreams();
  }

  get writable(): never {
    return noStreams();
  }

  close(code = 1005, reason = ""): void {
    this.closes.push({ code, reason });
    this.log.push(`ws close ${code} ${reason}`);
    this.#end({ code, reason });
  }

  /** The client sends a close frame. */
  clientClose(code: number, reason: string): void {
    this.log.push(`client closes ${code} ${reason}`);
    this.#end({ code, reason });
  }

  abort(): void {
    this.aborted = true;
    this.log.push("ws abort");
    this.#end({ code: 1006, reason: "" });
  }

  ping(): void {
    this.pings++;
    if (this.answersPings) queueMicrotask(() => this.onpong?.());
  }

  #end(info: CloseInfo): void {
    if (this.#seen) return;
    this.#seen = true;
    this.reader.end();
    this.#settle(info);
  }
}

/** A target connection whose far end is the test; close() ends its reader, as a socket's does. */
class MemConn implements Conn {
  readonly reader = new MemReader<Uint8Array>(10);
  readonly writer: MemWriter<Uint8Array>;
  closedAt = 0;

  constructor(readonly log: string[]) {
    this.writer = new MemWriter("target", log);
  }

  get readable(): never {
    return noStreams();
  }

  get writable(): never {
    return noStreams();
  }

  close(): void {
    if (this.closedAt) return;
    this.closedAt = performance.now();
    this.log.push("target cut");
    this.reader.end();
  }
}

/** A WebSocket and a target, and the bridge between them. */
function session(
  options: BridgeOptions & { protocol?: string; answersPings?: boolean } = {},
  connect?: () => Promise<Conn>,
) {
  const log: string[] = [];
  const ws = new MemWs(options.protocol ?? "binary", log, options.answersPings);
  const conn = new MemConn(log);
  const stats = bridge(ws, connect ?? (() => Promise.resolve(conn)), options);
  return { ws, conn, log, ended: () => within(5000, stats, "session end") };
}

/** Lets the bridge run whatever it would run now: promise callbacks and due timers. */
const settle = () => sleep(20);

describe("bridge() close rules", () => {
  test("target EOF delivers everything queued, then closes 1000 Target closed", async () => {
    const { ws, conn, log, ended } = session();
    ws.writer.hold();
    const chunks = [enc("one"), enc("two"), enc("three")];
    for (const chunk of chunks) conn.reader.push(chunk);
    conn.reader.end();
    await settle();
    assert.deepEqual(ws.closes, [], "closed before the queued data was out");
    ws.writer.release();
    const stats = await ended();
    assert.equal(ws.writer.chunks.length, 3);
    chunks.forEach((chunk, i) => assert.equal(ws.writer.chunks[i], chunk));
    assert.deepEqual(stats.close, { code: 1000, reason: "Target closed" });
    assert.deepEqual(ws.closes[0], { code: 1000, reason: "Target closed" });
    assert.deepEqual(log.slice(0, 5), [
      "client write",
      "client write",
      "client write",
      "client close",
      "ws close 1000 Target closed",
    ]);
    assert.ok(conn.closedAt > 0, "target not closed");
    assert.equal(stats.error, undefined);
  });

  test("client close delivers its data, half-closes the target, cuts it after the linger", async () => {
    const lingerMs = 300;
    const { ws, conn, log, ended } = session({ lingerMs });
    conn.writer.hold();
    ws.reader.push(enc("last"));
    ws.reader.push(enc("words"));
    ws.clientClose(1000, "bye");
    await settle();
    assert.equal(conn.writer.closedAt, 0, "FIN before the client's data was out");
    conn.writer.release();
    await waitFor(() => conn.writer.closedAt > 0, 5000, "FIN");
    assert.equal(conn.closedAt, 0, "target cut without a linger");
    const stats = await ended();
    assert.deepEqual(conn.writer.chunks.map((c) => new TextDecoder().decode(c)), ["last", "words"]);
    assert.deepEqual(log, [
      "client closes 1000 bye",
      "target write",
      "target write",
      "target close",
      "target cut",
      "client close",
      "ws close 1000 Target closed",
    ]);
    // A timer may fire up to a millisecond early on some runtimes.
    const lingered = conn.closedAt - conn.writer.closedAt;
    assert.ok(lingered >= lingerMs - 5, `target cut after ${lingered} ms`);
    assert.deepEqual(stats.close, { code: 1000, reason: "bye" });
  });

  test("a target that closes during the linger ends the session at once", async () => {
    const { ws, conn, ended } = session({ lingerMs: 60_000 });
    ws.clientClose(1001, "");
    await waitFor(() => conn.writer.closedAt > 0, 5000, "FIN");
    conn.reader.push(enc("reply"));
    conn.reader.end();
    const stats = await ended();
    assert.deepEqual(ws.writer.chunks, [enc("reply")]);
    assert.deepEqual(stats.close, { code: 1001, reason: "" });
    assert.ok(conn.closedAt > 0);
  });

  test("a target connect failure closes 1011 and stops reading the client", async () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    const { ws, conn, ended } = session({}, () => Promise.reject(refused));
    const stats = await ended();
    assert.deepEqual(ws.closes, [{ code: 1011, reason: "Failed to connect to downstream server" }]);
    assert.deepEqual(stats.close, ws.closes[0]);
    assert.equal(stats.connected, false);
    assert.equal(stats.error, refused);
    assert.equal(ws.reader.cancelled, true);
    assert.equal(conn.writer.chunks.length, 0);
  });

  test("a target read error closes 1011 Target connection error", async () => {
    const { ws, conn, ended } = session({ lingerMs: 60_000 });
    const reset = new Error("read ECONNRESET");
    conn.reader.push(enc("before"));
    await settle();
    conn.reader.error(reset);
    const stats = await ended();
    assert.deepEqual(ws.writer.chunks, [enc("before")]);
    assert.deepEqual(ws.closes[0], { code: 1011, reason: "Target connection error" });
    assert.equal(ws.writer.closedAt, 0, "a failed target is not a clean end");
    assert.equal(stats.error, reset);
    assert.equal(stats.connected, true);
    assert.ok(conn.closedAt > 0);
  });

  test("a target write error closes 1011 and aborts the target writer", async () => {
    const { ws, conn, ended } = session({ lingerMs: 50 });
    const pipe = new Error("write EPIPE");
    conn.writer.fail(pipe);
    ws.reader.push(enc("lost"));
    const stats = await ended();
    assert.deepEqual(ws.closes[0], { code: 1011, reason: "Target connection error" });
    assert.equal(stats.error, pipe);
    assert.equal(conn.writer.aborted, true);
    assert.equal(conn.writer.chunks.length, 0);
  });

  test("the stop signal closes 1001 and cuts the target without lingering", async () => {
    const stop = new StopSignal();
    const { ws, conn, ended } = session({ signal: stop, lingerMs: 60_000 });
    ws.reader.push(enc("working"));
    await settle();
    stop.abort();
    const stats = await ended();
    assert.deepEqual(ws.closes[0], { code: 1001, reason: "Server shutting down" });
    assert.deepEqual(stats.close, { code: 1001, reason: "Server shutting down" });
    assert.ok(conn.writer.closedAt > 0 && conn.closedAt > 0);
  });

  test("the stop signal cuts a target that lingers after the client closed", async () => {
    const stop = new StopSignal();
    const { ws, conn, ended } = session({ signal: stop, lingerMs: 60_000 });
    ws.clientClose(1000, "");
    await waitFor(() => conn.writer.closedAt > 0, 5000, "FIN");
    await settle();
    assert.equal(conn.closedAt, 0);
    stop.abort();
    await waitFor(() => conn.closedAt > 0, 5000, "target cut on stop");
    const stats = await ended();
    assert.deepEqual(stats.close, { code: 1000, reason: "" });
  });

  test("an AbortSignal aborted before the start closes 1001 at once", async () => {
    const abort = new AbortController();
    abort.abort();
    const { ws, conn, ended } = session({ signal: abort.signal, lingerMs: 60_000 });
    const stats = await ended();
    assert.deepEqual(ws.closes[0], { code: 1001, reason: "Server shutting down" });
    assert.deepEqual(stats.close, ws.closes[0]);
    assert.ok(conn.closedAt > 0);
  });

  test("a stop after the session has ended does nothing to it", async () => {
    const stop = new StopSignal();
    const { ws, conn, ended } = session({ signal: stop });
    conn.reader.end();
    await ended();
    const closes = ws.closes.length;
    stop.abort();
    assert.equal(ws.closes.length, closes);
  });
});

describe("bridge() message types", () => {
  test("base64 mode decodes client text and encodes target bytes", async () => {
    const { ws, conn, ended } = session({ protocol: "base64" });
    ws.reader.push(btoa("hello"));
    conn.reader.push(new Uint8Array([0, 1, 2, 255]));
    await waitFor(() => conn.writer.chunks.length === 1 && ws.writer.chunks.length === 1);
    conn.reader.end();
    const stats = await ended();
    assert.deepEqual(conn.writer.chunks, [enc("hello")]);
    assert.deepEqual(ws.writer.chunks, ["AAEC/w=="]);
    assert.equal(stats.clientBytes, 5);
    assert.equal(stats.targetBytes, 4);
  });

  test("base64 mode closes 1007 on invalid base64", async () => {
    const { ws, conn, ended } = session({ protocol: "base64", lingerMs: 50 });
    ws.reader.push("not base64!");
    const stats = await ended();
    assert.deepEqual(ws.closes[0], { code: 1007, reason: "Invalid base64 data" });
    assert.ok(stats.error instanceof SyntaxError);
    assert.equal(conn.writer.chunks.length, 0);
    assert.equal(conn.writer.aborted, true);
  });

  for (const protocol of ["binary", ""]) {
    test(`a text message closes 1003 when the protocol is "${protocol}"`, async () => {
      const { ws, conn, ended } = session({ protocol, lingerMs: 50 });
      ws.reader.push(enc("bytes"));
      ws.reader.push(btoa("text"));
      const stats = await ended();
      assert.deepEqual(ws.closes[0], { code: 1003, reason: CLOSE_REASON.textUnsupported });
      assert.deepEqual(conn.writer.chunks, [enc("bytes")]);
      assert.equal(stats.clientBytes, 5);
    });
  }
});

describe("bridge() heartbeat", () => {
  test("a client that misses two pongs in a row is dropped", async () => {
    const heartbeatMs = 30;
    const { ws, ended } = session({ heartbeatMs, lingerMs: 50 });
    const stats = await ended();
    assert.equal(ws.aborted, true);
    assert.equal(ws.pings, 2);
    assert.match(String(stats.error), /missed two pongs/);
    assert.equal(stats.close.code, 1006);
    // The heartbeat stops with the session.
    assert.equal(ws.onpong, null);
    await sleep(heartbeatMs * 4);
    assert.equal(ws.pings, 2);
  });

  test("a client that answers pings stays connected", async () => {
    const { ws, conn, ended } = session({ heartbeatMs: 20, answersPings: true });
    await waitFor(() => ws.pings >= 6, 5000, "six pings");
    assert.equal(ws.aborted, false);
    conn.reader.end();
    const stats = await ended();
    assert.equal(stats.error, undefined);
    assert.deepEqual(stats.close, { code: 1000, reason: "Target closed" });
  });
});

describe("bridge() flow control", () => {
  for (const direction of ["target to client", "client to target"]) {
    test(`a pending writer stops the reads from ${direction.split(" ")[0]}`, async () => {
      const { ws, conn, ended } = session();
      const [from, to] = direction === "target to client"
        ? [conn.reader as MemReader<Uint8Array | string>, ws.writer]
        : [ws.reader, conn.writer as MemWriter<Uint8Array | string>];
      to.hold();
      const chunks = Array.from({ length: 8 }, (_, i) => enc(`#${i}#`));
      for (const chunk of chunks) from.push(chunk);
      await settle();
      // One read took the first chunk, which waits for room; the rest stay queued.
      assert.equal(from.reads, 1, "the pump read ahead of its writer");
      assert.equal(to.chunks.length, 0, "written before the writer was ready");
      assert.deepEqual(from.calls, ["pause"]);
      to.release();
      await waitFor(() => to.chunks.length === chunks.length, 5000, "all chunks");
      chunks.forEach((chunk, i) => assert.equal(to.chunks[i], chunk));
      assert.deepEqual(from.calls, ["pause", "resume"]);
      conn.reader.end();
      await ended();
    });
  }
});

describe("bridge() stats", () => {
  test("stats count the bytes each way and the tap sees every chunk", async () => {
    const seen: string[] = [];
    const { ws, conn, ended } = session({
      tap: (from, chunk) => seen.push(`${from}:${new TextDecoder().decode(chunk)}`),
    });
    ws.reader.push(enc("abc"));
    ws.reader.push(enc("defgh"));
    conn.reader.push(enc("1234567"));
    await waitFor(() => seen.length === 3);
    conn.reader.end();
    const stats: BridgeStats = await ended();
    assert.deepEqual(stats, {
      clientBytes: 8,
      targetBytes: 7,
      connected: true,
      closedBy: "target",
      close: { code: 1000, reason: "Target closed" },
    });
    assert.deepEqual(seen.sort(), ["client:abc", "client:defgh", "target:1234567"]);
  });
});

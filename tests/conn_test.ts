/**
 * The target-side {@link Conn} contract, run against every connector the
 * current runtime has (node:net everywhere, Deno.connect, Bun.connect) over
 * real loopback and unix sockets, through each connection's Web Streams and
 * again through what the bridge uses: `reader` and `writer` where the
 * connector has them (Bun's has none: the bridge uses its streams).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectBun } from "../adapters/connect/bun.ts";
import { connectDeno } from "../adapters/connect/deno.ts";
import { connectNode } from "../adapters/connect/node.ts";
import type { ChunkReader, ChunkWriter, Conn, Target } from "../lib/types.ts";
import {
  pattern,
  RUNTIME,
  startEchoServer,
  startTcpServer,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";
import { after, before, capability, describe, type SkipIf, test } from "./_skip.ts";

const only = (runtime: typeof RUNTIME, what: string): SkipIf =>
  RUNTIME === runtime ? false : capability(`${what} exists only under ${runtime}`);
const CONNECTORS: { name: string; connect: (t: Target) => Promise<Conn>; skip: SkipIf }[] = [
  { name: "connectNode()", connect: (t) => connectNode(t), skip: false },
  { name: "connectDeno()", connect: (t) => connectDeno(t), skip: only("deno", "Deno.connect") },
  { name: "connectBun()", connect: (t) => connectBun(t), skip: only("bun", "Bun.connect") },
];

/** How a test reads and writes a connection. */
interface View {
  /** Appended to the connector's name in test names. */
  readonly label: string;
  /** What the test names call the two sides. */
  readonly input: string;
  readonly output: string;
  reader(conn: Conn): ChunkReader<Uint8Array>;
  writer(conn: Conn): ChunkWriter<Uint8Array>;
}
const VIEWS: View[] = [
  {
    label: "",
    input: "readable",
    output: "writable",
    reader: (conn) => conn.readable.getReader(),
    writer: (conn) => conn.writable.getWriter(),
  },
  {
    label: " via reader/writer",
    input: "reader",
    output: "writer",
    reader: (conn) => conn.reader ?? conn.readable.getReader(),
    writer: (conn) => conn.writer ?? conn.writable.getWriter(),
  },
];

const tcp = (port: number): Target => ({ kind: "tcp", hostname: "127.0.0.1", port });
const text = (s: string) => new TextEncoder().encode(s);

/** Reads until done, at most `limit` bytes. */
async function readAll(reader: ChunkReader<Uint8Array>, limit = 64 << 20) {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
    if (total > limit) throw new Error(`more than ${limit} bytes`);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** Writes as the bridge does: waits for `ready`, not for the write itself. */
async function send(writer: ChunkWriter<Uint8Array>, chunk: Uint8Array): Promise<void> {
  await writer.ready;
  writer.write(chunk).catch(() => {});
}

/** Byte `g` of a stream made of `pattern(65536, n)` blocks, block `n` at byte `n * 65536`. */
const block = (g: number) => ((g & 0xffff) * 7 + (g >> 16)) & 0xff;

/** Collects what a server socket receives until its peer's FIN. */
function received(sock: net.Socket): Promise<string> {
  let data = "";
  sock.setEncoding("utf8").on("data", (d: string) => (data += d));
  return new Promise((resolve) => sock.once("end", () => resolve(data)));
}

for (const { name: connector, connect, skip } of CONNECTORS) {
  for (const view of VIEWS) {
    const name = connector + view.label;
    describe(name, () => contract(name, connect, skip, view));
  }
}

function contract(
  name: string,
  connect: (t: Target) => Promise<Conn>,
  skip: SkipIf,
  view: View,
): void {
  const { reader, writer, input: readSide, output: writeSide } = view;
  let echo: TcpServer;
  before(async () => (echo = await startEchoServer()));
  after(() => echo.close());

  test(`${name} echoes 4 MiB without loss or reordering`, { skip }, async () => {
    const conn = await connect(tcp(echo.port));
    const data = pattern(4 * 1024 * 1024, 5);
    const got = readAll(reader(conn));
    const out = writer(conn);
    for (let i = 0; i < data.length; i += 65536) await send(out, data.subarray(i, i + 65536));
    await out.close();
    const echoed = await within(20000, got, "echo");
    // Not deepEqual: its diff of two 4 MiB arrays takes minutes.
    assert.equal(echoed.byteLength, data.byteLength);
    assert.equal(Buffer.compare(echoed, data), 0, "echoed bytes differ");
    conn.close();
  });

  test(`${name} sends FIN on ${writeSide} close and still reads the reply`, { skip }, async () => {
    const server = await startTcpServer(async (sock) => {
      const got = await received(sock);
      sock.end(`got ${got.length}`);
    });
    try {
      const conn = await connect(tcp(server.port));
      const out = writer(conn);
      await send(out, text("hello"));
      await within(5000, out.close(), "half-close");
      const reply = await within(5000, readAll(reader(conn)), "reply");
      assert.equal(new TextDecoder().decode(reply), "got 5");
      conn.close();
    } finally {
      await server.close();
    }
  });

  test(`${name} ends ${readSide} on target FIN and still writes`, { skip }, async () => {
    let got!: Promise<string>;
    const server = await startTcpServer((sock) => {
      got = received(sock);
      sock.end("bye");
    });
    try {
      const conn = await connect(tcp(server.port));
      const reply = await within(5000, readAll(reader(conn)), "target FIN");
      assert.equal(new TextDecoder().decode(reply), "bye");
      const out = writer(conn);
      await send(out, text("still here"));
      await out.close();
      assert.equal(await within(5000, got, "target EOF"), "still here");
      conn.close();
    } finally {
      await server.close();
    }
  });

  test(`${name} still writes after ${readSide} is cancelled`, { skip }, async () => {
    let got!: Promise<string>;
    const server = await startTcpServer((sock) => {
      got = received(sock);
      sock.write(new Uint8Array(1 << 20));
    });
    try {
      const conn = await connect(tcp(server.port));
      const input = reader(conn);
      await within(5000, input.read(), "first chunk");
      await input.cancel();
      const out = writer(conn);
      await send(out, text("after cancel"));
      await out.close();
      assert.equal(await within(5000, got, "target EOF"), "after cancel");
      conn.close();
    } finally {
      await server.close();
    }
  });

  test(`${name} reads and drops what comes after a cancel`, { skip }, async () => {
    // More than the socket buffers of both ends hold: it all leaves the
    // target only if the connection keeps reading.
    const total = 32 << 20;
    let flushed!: Promise<void>;
    const server = await startTcpServer((sock) => {
      flushed = (async () => {
        for (let sent = 0; sent < total && !sock.destroyed; sent += 65536) {
          if (!sock.write(new Uint8Array(65536))) await drained(sock);
        }
        if (sock.writableLength > 0) await drained(sock);
      })();
    });
    try {
      const conn = await connect(tcp(server.port));
      const input = reader(conn);
      await within(5000, input.read(), "first chunk");
      await input.cancel();
      await within(20000, flushed, "target flushed after cancel");
      assert.equal(server.sockets[0]!.destroyed, false, "the connection was dropped");
      assert.equal((await input.read()).done, true, "a read after cancel");
      conn.close();
    } finally {
      await server.close();
    }
  });

  test(`${name} holds ready back while the target does not read`, { skip }, async () => {
    let target!: net.Socket;
    const server = await startTcpServer((sock) => void (target = sock.pause()));
    try {
      const conn = await connect(tcp(server.port));
      const out = writer(conn);
      let sent = 0;
      // Write until ready stays pending for a second; at most 256 MiB.
      while (sent < 256 << 20) {
        const room = await within(1000, out.ready).then(() => true, () => false);
        if (!room) break;
        out.write(pattern(65536, sent >> 16)).catch(() => {});
        sent += 65536;
      }
      assert.ok(sent < 64 << 20, `ready let ${sent} bytes through to a stalled target`);
      // The target reads again: every byte arrives, in order, and ready settles.
      let read = 0;
      let wrong = -1;
      target.on("data", (chunk: Uint8Array) => {
        for (let i = 0; i < chunk.length; i++, read++) {
          if (wrong < 0 && chunk[i] !== block(read)) wrong = read;
        }
      }).resume();
      await waitFor(() => read >= sent, 20000, "target read everything");
      assert.equal(wrong, -1, `byte ${wrong} is wrong`);
      await within(5000, out.ready, "ready after the target read");
      conn.close();
    } finally {
      await server.close();
    }
  });

  // Connecting does not depend on the view: once per connector.
  if (view === VIEWS[0]) {
    test(`${name} rejects a refused connect with ECONNREFUSED`, { skip }, async () => {
      const server = await startTcpServer(() => {});
      const port = server.port;
      await server.close();
      await assert.rejects(within(5000, connect(tcp(port))), { code: "ECONNREFUSED" });
    });
  }

  test(`${name} connects to a unix socket target`, { skip }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "conn-test-"));
    const path = join(dir, "echo.sock");
    const server = net.createServer({ allowHalfOpen: true }, (sock) => sock.pipe(sock));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const conn = await connect({ kind: "unix", path });
      const out = writer(conn);
      await send(out, text("over unix"));
      await out.close();
      const reply = await within(5000, readAll(reader(conn)), "unix echo");
      assert.equal(new TextDecoder().decode(reply), "over unix");
      conn.close();
    } finally {
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name} stops reading while the consumer does not`, { skip }, async () => {
    // Each 64 KiB block has its own seed, so a reused read buffer shows.
    let written = 0;
    const server = await startTcpServer(async (sock) => {
      // Flood until the socket pushes back for good; at most 256 MiB.
      while (!sock.destroyed && written < 256 << 20) {
        const chunk = pattern(65536, written >> 16);
        written += chunk.byteLength;
        if (!sock.write(chunk)) await drained(sock);
      }
    });
    try {
      const conn = await connect(tcp(server.port));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.ok(written < 16 << 20, `target wrote ${written} bytes to a stalled reader`);
      // Reading again resumes the flow, and what was queued is intact.
      const before = written;
      const input = reader(conn);
      for (let read = 0; read < 8 << 20;) {
        const { value } = await within(5000, input.read(), "read");
        for (let i = 0; i < value!.length; i++, read++) {
          if (value![i] !== block(read)) assert.fail(`byte ${read} is wrong`);
        }
      }
      await waitFor(() => written > before, 5000, "target resumed");
      conn.close();
      // close() ends the reader instead of leaving it hanging.
      await within(5000, readUntilDone(input), "end after close()");
    } finally {
      await server.close();
    }
  });
}

/** Resolves on `drain` or `close`, whichever comes first. */
function drained(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off("drain", done).off("close", done);
      resolve();
    };
    sock.on("drain", done).on("close", done);
  });
}

/** Drains a reader until done or error, at most 4096 reads. */
async function readUntilDone(reader: ChunkReader<Uint8Array>) {
  for (let i = 0; i < 4096; i++) {
    if ((await reader.read().catch(() => ({ done: true }))).done) return;
  }
  throw new Error("readable did not end");
}

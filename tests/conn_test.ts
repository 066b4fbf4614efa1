/**
 * The target-side {@link Conn} contract, run against every connector the
 * current runtime has (node:net everywhere, Deno.connect, Bun.connect) over
 * real loopback and unix sockets.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectBun } from "../adapters/connect/bun.ts";
import { connectDeno } from "../adapters/connect/deno.ts";
import { connectNode } from "../adapters/connect/node.ts";
import type { Conn, Target } from "../lib/types.ts";
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

const tcp = (port: number): Target => ({ kind: "tcp", hostname: "127.0.0.1", port });
const text = (s: string) => new TextEncoder().encode(s);

/** Reads `readable` to its end, at most `limit` bytes. */
async function readAll(readable: ReadableStream<Uint8Array>, limit = 64 << 20) {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of readable) {
    chunks.push(chunk);
    total += chunk.byteLength;
    if (total > limit) throw new Error(`more than ${limit} bytes`);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** Collects what a server socket receives until its peer's FIN. */
function received(sock: net.Socket): Promise<string> {
  let data = "";
  sock.setEncoding("utf8").on("data", (d: string) => (data += d));
  return new Promise((resolve) => sock.once("end", () => resolve(data)));
}

for (const { name, connect, skip } of CONNECTORS) {
  describe(name, () => {
    let echo: TcpServer;
    before(async () => (echo = await startEchoServer()));
    after(() => echo.close());

    test(`${name} echoes 4 MiB without loss or reordering`, { skip }, async () => {
      const conn = await connect(tcp(echo.port));
      const data = pattern(4 * 1024 * 1024, 5);
      const got = readAll(conn.readable);
      const writer = conn.writable.getWriter();
      for (let i = 0; i < data.length; i += 65536) await writer.write(data.subarray(i, i + 65536));
      await writer.close();
      const echoed = await within(20000, got, "echo");
      // Not deepEqual: its diff of two 4 MiB arrays takes minutes.
      assert.equal(echoed.byteLength, data.byteLength);
      assert.equal(Buffer.compare(echoed, data), 0, "echoed bytes differ");
      conn.close();
    });

    test(`${name} sends FIN on writable close and still reads the reply`, { skip }, async () => {
      const server = await startTcpServer(async (sock) => {
        const got = await received(sock);
        sock.end(`got ${got.length}`);
      });
      try {
        const conn = await connect(tcp(server.port));
        const writer = conn.writable.getWriter();
        await writer.write(text("hello"));
        await within(5000, writer.close(), "half-close");
        const reply = await within(5000, readAll(conn.readable), "reply");
        assert.equal(new TextDecoder().decode(reply), "got 5");
        conn.close();
      } finally {
        await server.close();
      }
    });

    test(`${name} ends readable on target FIN and still writes`, { skip }, async () => {
      let got!: Promise<string>;
      const server = await startTcpServer((sock) => {
        got = received(sock);
        sock.end("bye");
      });
      try {
        const conn = await connect(tcp(server.port));
        const reply = await within(5000, readAll(conn.readable), "target FIN");
        assert.equal(new TextDecoder().decode(reply), "bye");
        const writer = conn.writable.getWriter();
        await writer.write(text("still here"));
        await writer.close();
        assert.equal(await within(5000, got, "target EOF"), "still here");
        conn.close();
      } finally {
        await server.close();
      }
    });

    test(`${name} still writes after readable is cancelled`, { skip }, async () => {
      let got!: Promise<string>;
      const server = await startTcpServer((sock) => {
        got = received(sock);
        sock.write(new Uint8Array(1 << 20));
      });
      try {
        const conn = await connect(tcp(server.port));
        const reader = conn.readable.getReader();
        await within(5000, reader.read(), "first chunk");
        await reader.cancel();
        const writer = conn.writable.getWriter();
        await writer.write(text("after cancel"));
        await writer.close();
        assert.equal(await within(5000, got, "target EOF"), "after cancel");
        conn.close();
      } finally {
        await server.close();
      }
    });

    test(`${name} rejects a refused connect with ECONNREFUSED`, { skip }, async () => {
      const server = await startTcpServer(() => {});
      const port = server.port;
      await server.close();
      await assert.rejects(within(5000, connect(tcp(port))), { code: "ECONNREFUSED" });
    });

    test(`${name} connects to a unix socket target`, { skip }, async () => {
      const dir = mkdtempSync(join(tmpdir(), "conn-test-"));
      const path = join(dir, "echo.sock");
      const server = net.createServer({ allowHalfOpen: true }, (sock) => sock.pipe(sock));
      await new Promise<void>((resolve) => server.listen(path, resolve));
      try {
        const conn = await connect({ kind: "unix", path });
        const writer = conn.writable.getWriter();
        await writer.write(text("over unix"));
        await writer.close();
        const reply = await within(5000, readAll(conn.readable), "unix echo");
        assert.equal(new TextDecoder().decode(reply), "over unix");
        conn.close();
      } finally {
        await new Promise((resolve) => server.close(resolve));
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test(`${name} stops reading while the consumer does not`, { skip }, async () => {
      // Each 64 KiB block has its own seed, so a reused read buffer shows.
      const block = (g: number) => ((g & 0xffff) * 7 + (g >> 16)) & 0xff;
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
        const reader = conn.readable.getReader();
        for (let read = 0; read < 8 << 20;) {
          const { value } = await within(5000, reader.read(), "read");
          for (let i = 0; i < value!.length; i++, read++) {
            if (value![i] !== block(read)) assert.fail(`byte ${read} is wrong`);
          }
        }
        await waitFor(() => written > before, 5000, "target resumed");
        conn.close();
        // close() ends the readable instead of leaving it hanging.
        await within(5000, readUntilDone(reader), "end after close()");
      } finally {
        await server.close();
      }
    });
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
async function readUntilDone(reader: ReadableStreamDefaultReader<Uint8Array>) {
  for (let i = 0; i < 4096; i++) {
    if ((await reader.read().catch(() => ({ done: true }))).done) return;
  }
  throw new Error("readable did not end");
}

/**
 * `Deno.connect` sockets as {@link Conn}s: the native target side on Deno.
 * Reads use `conn.read()` rather than `conn.readable`, which closes the whole
 * connection at EOF, and half-close is `closeWrite()` (`docs/runtimes.md`,
 * "Deno: reading to EOF and half-closing").
 *
 * @module
 */
import { CONNECT_TIMEOUT_MS } from "../../lib/limits.ts";
import { deadlines } from "../../lib/deadlines.ts";
import { READY, StreamViews } from "../../lib/bridge/chunks.ts";
import { lendHeadRoom, withHeadRoom } from "../../lib/protocol/server_frames.ts";
import type { ChunkReader, ChunkWriter, Conn, Target } from "../../lib/types.ts";
import type { ConnectOptions } from "./node.ts";

// --- the slice of the Deno API in use (no Deno types needed for tsc) ---

interface DenoConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
  setKeepAlive?(keepAlive?: boolean): void;
}

interface DenoSlice {
  connect(
    options:
      | { hostname: string; port: number; transport: "tcp"; signal?: AbortSignal }
      | { path: string; transport: "unix" },
  ): Promise<DenoConn>;
  connectTls(options: { hostname: string; port: number }): Promise<DenoConn>;
}

const MIN_READ = 256;
const MAX_READ = 64 * 1024;

const DONE: ReadableStreamReadResult<Uint8Array> = { done: true, value: undefined };
const noop = () => {};

/** Wraps a connected Deno socket. Large reads are handed on without a copy. */
function denoConn(conn: DenoConn): Conn {
  return new DenoSocketConn(conn);
}

// Reads pull straight from the socket, so no queue and no Web Streams unless
// someone asks for `readable` or `writable`.
class DenoSocketConn extends StreamViews<Uint8Array, Uint8Array>
  implements Conn, ChunkReader<Uint8Array> {
  readonly writer: DenoWriter;
  #closed = false;
  #cancelled = false;
  #reading: Promise<unknown> = READY;
  // The read buffer grows with the flow and shrinks back: an idle session
  // pins a 256-byte buffer in its pending read, not 64 KiB.
  #size = MIN_READ;
  // Large reads are sent on as one WebSocket frame each: room for its head
  // spares the node:net writev of Deno a copy of the payload.
  #buf = withHeadRoom(MIN_READ);

  constructor(readonly conn: DenoConn) {
    super();
    this.writer = new DenoWriter(conn, () => this.close());
  }

  get reader(): ChunkReader<Uint8Array> {
    return this;
  }

  // A promise chain, not an async function: an idle session waits here for
  // its whole life, and a suspended async function would stay in memory all
  // that time (`bench/README.md`, "Figures behind design choices").
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (this.#cancelled) return Promise.resolve(DONE);
    const buf = this.#buf;
    const pending = this.conn.read(buf);
    this.#reading = pending;
    return pending.then((n) => this.#got(buf, n), (error) => this.#failed(error));
  }

  #failed(error: unknown): ReadableStreamReadResult<Uint8Array> {
    // After a local close() the read fails: that is an end, as on node:net.
    if (this.#cancelled || this.#closed) return DONE;
    throw mapError(error);
  }

  #got(buf: Uint8Array<ArrayBuffer>, n: number | null): ReadableStreamReadResult<Uint8Array> {
    if (this.#cancelled || n === null) return DONE;
    const size = this.#size = n === buf.length
      ? Math.min(this.#size * 2, MAX_READ)
      : n < this.#size / 4
      ? Math.max(this.#size / 2, MIN_READ)
      : this.#size;
    // A small read would pin the whole buffer while queued: copy it out and
    // keep the buffer; a large one is handed on and replaced.
    let value: Uint8Array;
    if (n < buf.length / 4) {
      value = buf.slice(0, n);
      if (buf.length !== size) buf = withHeadRoom(size);
    } else {
      value = lendHeadRoom(buf.subarray(0, n));
      buf = withHeadRoom(size);
    }
    this.#buf = buf;
    return { done: false, value };
  }

  async cancel(): Promise<void> {
    if (this.#cancelled) return;
    this.#cancelled = true;
    // Keep reading and dropping: closing with unread data sends RST, which
    // would discard bytes the target has still to receive from us.
    await this.#reading.then(noop, noop);
    const sink = new Uint8Array(MAX_READ);
    (async () => {
      while (!this.#closed && (await this.conn.read(sink)) !== null);
    })().catch(() => {});
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }
}

class DenoWriter implements ChunkWriter<Uint8Array> {
  ready: Promise<void> = READY;

  constructor(readonly conn: DenoConn, readonly onAbort: () => void) {}

  abort(): Promise<void> {
    this.onAbort();
    return READY;
  }

  write(chunk: Uint8Array): Promise<void> {
    // The caller waits for `ready` first, so one write is in flight; a
    // failure sticks in `ready`, as on an errored WritableStream.
    const written = this.#write(chunk);
    this.ready = written;
    written.catch(() => {});
    return written;
  }

  async #write(chunk: Uint8Array): Promise<void> {
    try {
      for (let off = 0; off < chunk.byteLength;) off += await this.conn.write(chunk.subarray(off));
    } catch (error) {
      throw mapError(error);
    }
  }

  async close(): Promise<void> {
    await this.ready;
    try {
      await this.conn.closeWrite();
    } catch (error) {
      throw mapError(error);
    }
  }
}

/** Gives Deno errors the Node `code` (`ECONNREFUSED`, …) when they lack one. */
function mapError(error: unknown): unknown {
  if (!(error instanceof Error) || typeof (error as { code?: unknown }).code === "string") {
    return error;
  }
  const code = CODES[error.name];
  // defineProperty: DOMException (TimeoutError) has a numeric `code` getter.
  return code ? Object.defineProperty(error, "code", { value: code }) : error;
}

const CODES: Record<string, string> = {
  ConnectionRefused: "ECONNREFUSED",
  ConnectionReset: "ECONNRESET",
  ConnectionAborted: "ECONNABORTED",
  BrokenPipe: "EPIPE",
  NotFound: "ENOENT",
  TimedOut: "ETIMEDOUT",
  TimeoutError: "ETIMEDOUT",
  AddrNotAvailable: "EADDRNOTAVAIL",
};

/**
 * Connects to a TCP (optionally TLS) or unix target with `Deno.connect`.
 * Only callable under Deno.
 *
 * @example
 * ```ts
 * import { connectDeno } from "./deno.ts";
 *
 * // Under Deno:
 * const openVnc = () => connectDeno({ kind: "tcp", hostname: "127.0.0.1", port: 5900 });
 * ```
 */
export async function connectDeno(target: Target, options: ConnectOptions = {}): Promise<Conn> {
  const deno = (globalThis as unknown as { Deno: DenoSlice }).Deno;
  try {
    if (target.kind === "unix") {
      return denoConn(await deno.connect({ path: target.path, transport: "unix" }));
    }
    // defaultConnect sends TLS targets to connectNode, which keeps the name
    // for SNI; here a checked address would fail verification (closed, safe).
    const { port } = target;
    const hostname = target.address ?? target.hostname;
    const conn = target.tls
      ? await deno.connectTls({ hostname, port })
      : await connectWithin(deno, hostname, port, options.timeoutMs ?? CONNECT_TIMEOUT_MS);
    conn.setNoDelay?.(true);
    conn.setKeepAlive?.(true);
    return denoConn(conn);
  } catch (error) {
    throw mapError(error);
  }
}

/**
 * `Deno.connect` that gives up after `ms`. Not `AbortSignal.timeout()`: its
 * signal and timer would live on for `ms` after every connect.
 */
async function connectWithin(
  deno: DenoSlice,
  hostname: string,
  port: number,
  ms: number,
): Promise<DenoConn> {
  const abort = new AbortController();
  const timer = deadlines.after(
    ms,
    () => abort.abort(new DOMException("connect timed out", "TimeoutError")),
  );
  try {
    return await deno.connect({ hostname, port, transport: "tcp", signal: abort.signal });
  } finally {
    timer.stop();
  }
}

/**
 * `Deno.connect` sockets as {@link Conn}s: the native target side on Deno.
 * Reads use `conn.read()` rather than `conn.readable`, which closes the whole
 * connection at EOF, and half-close is `closeWrite()` (runtimes.md T11, T12).
 *
 * @module
 */
import type { Conn, Target } from "../lib/types.ts";
import { HIGH_WATER_MARK } from "./limits.ts";
import type { ConnectOptions } from "./node_conn.ts";

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

const MIN_READ = 4 * 1024;
const MAX_READ = 64 * 1024;

/** Wraps a connected Deno socket. Large reads are handed on without a copy. */
function denoConn(conn: DenoConn): Conn {
  let closed = false;
  let cancelled = false;
  let reading: Promise<unknown> = Promise.resolve();
  // The read buffer grows with the flow and shrinks back: an idle session
  // pins a 4 KiB buffer in its pending read, not 64 KiB.
  let size = MIN_READ;
  let buf = new Uint8Array(size);
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // Already closed by the runtime.
    }
  };

  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let n: number | null;
      try {
        const pending = conn.read(buf);
        reading = pending.catch(() => null);
        n = await pending;
      } catch (error) {
        // After a local close() the read fails: that is an end, as on node:net.
        if (cancelled) return;
        if (closed) controller.close();
        else controller.error(mapError(error));
        return;
      }
      if (cancelled) return;
      if (n === null) return controller.close();
      if (n === buf.length) size = Math.min(size * 2, MAX_READ);
      else if (n < size / 4) size = Math.max(size / 2, MIN_READ);
      // A small read would pin the whole buffer while queued: copy it out and
      // keep the buffer; a large one is handed on and replaced.
      if (n < buf.length / 4) {
        controller.enqueue(buf.slice(0, n));
        if (buf.length !== size) buf = new Uint8Array(size);
      } else {
        controller.enqueue(buf.subarray(0, n));
        buf = new Uint8Array(size);
      }
    },
    async cancel() {
      cancelled = true;
      // Keep reading and dropping: closing with unread data sends RST, which
      // would discard bytes the target has still to receive from us.
      await reading;
      const sink = new Uint8Array(MAX_READ);
      (async () => {
        while (!closed && (await conn.read(sink)) !== null);
      })().catch(() => {});
    },
  }, { highWaterMark: HIGH_WATER_MARK, size: (chunk) => chunk.byteLength });

  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      try {
        for (let off = 0; off < chunk.byteLength;) off += await conn.write(chunk.subarray(off));
      } catch (error) {
        throw mapError(error);
      }
    },
    close: () => conn.closeWrite().catch((error) => Promise.reject(mapError(error))),
    abort: close,
  });

  return { readable, writable, close };
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
 * const conn = await connectDeno({ kind: "tcp", hostname: "127.0.0.1", port: 5900 });
 * ```
 */
export async function connectDeno(target: Target, options: ConnectOptions = {}): Promise<Conn> {
  const deno = (globalThis as unknown as { Deno: DenoSlice }).Deno;
  try {
    if (target.kind === "unix") {
      return denoConn(await deno.connect({ path: target.path, transport: "unix" }));
    }
    const { hostname, port } = target;
    const conn = target.tls ? await deno.connectTls({ hostname, port }) : await deno.connect({
      hostname,
      port,
      transport: "tcp",
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
    conn.setNoDelay?.(true);
    conn.setKeepAlive?.(true);
    return denoConn(conn);
  } catch (error) {
    throw mapError(error);
  }
}

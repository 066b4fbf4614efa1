/**
 * `Bun.connect` sockets as {@link Conn}s: the native target side on Bun.
 * `allowHalfOpen` with `shutdown()` half-closes (plain `end()` can reset a
 * busy connection); `write()` may be partial, so the rest waits for `drain`;
 * after our `shutdown()` the peer's FIN arrives as `close`, not `end`
 * (`docs/runtimes.md`, "Bun: Bun.connect writes and half-close").
 *
 * @module
 */
import type { Conn, Target } from "../../lib/types.ts";
import { CONNECT_TIMEOUT_MS, HIGH_WATER_MARK } from "../../lib/limits.ts";
import { type Alarm, deadlines } from "../../lib/deadlines.ts";
import type { ConnectOptions } from "./node.ts";

// --- the slice of the Bun API in use (no Bun types needed for tsc) ---

interface BunSocket {
  write(data: Uint8Array): number;
  shutdown(): void;
  end(): void;
  pause(): void;
  resume(): void;
  setNoDelay?(noDelay?: boolean): boolean;
  setKeepAlive?(enable?: boolean, initialDelay?: number): boolean;
}

interface BunHandlers {
  data(sock: BunSocket, data: Uint8Array): void;
  drain(sock: BunSocket): void;
  end(sock: BunSocket): void;
  close(sock: BunSocket, error?: Error): void;
  error(sock: BunSocket, error: Error): void;
}

type BunConnectOptions =
  & { allowHalfOpen: boolean; socket: BunHandlers }
  & ({ hostname: string; port: number; tls?: boolean } | { unix: string });

interface BunSlice {
  connect(options: BunConnectOptions): Promise<BunSocket>;
}

/**
 * Connects to a TCP (optionally TLS) or unix target with `Bun.connect`.
 * Only callable under Bun. Every `data` chunk is a fresh buffer, so it is
 * passed on without a copy.
 *
 * @example
 * ```ts
 * import { connectBun } from "./bun.ts";
 *
 * // Under Bun:
 * const openVnc = () => connectBun({ kind: "tcp", hostname: "127.0.0.1", port: 5900 });
 * ```
 */
export async function connectBun(target: Target, options: ConnectOptions = {}): Promise<Conn> {
  const bun = (globalThis as unknown as { Bun: BunSlice }).Bun;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let done = false;
  let paused: BunSocket | undefined;
  // The unwritten tail of the chunk being written, waiting for `drain`.
  let pending: { rest: Uint8Array; resolve: () => void; reject: (e: Error) => void } | undefined;
  const finish = (error?: Error) => {
    pending?.reject(error ?? new Error("Socket closed"));
    pending = undefined;
    if (done) return;
    done = true;
    if (error) controller.error(error);
    else controller.close();
  };
  const send = (s: BunSocket, data: Uint8Array): number => {
    const n = s.write(data);
    if (n < 0) throw new Error("Socket closed");
    return n;
  };

  const readable = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    pull() {
      paused?.resume();
      paused = undefined;
    },
    cancel() {
      // Keep reading and dropping (see adapters/connect/node.ts): no RST on unread data.
      done = true;
      paused?.resume();
    },
  }, { highWaterMark: HIGH_WATER_MARK, size: (chunk) => chunk.byteLength });

  const handlers: BunHandlers = {
    data(s, data) {
      if (done) return;
      controller.enqueue(data);
      if ((controller.desiredSize ?? 1) > 0) return;
      s.pause();
      paused = s;
    },
    drain(s) {
      if (!pending) return;
      try {
        pending.rest = pending.rest.subarray(send(s, pending.rest));
        if (pending.rest.byteLength > 0) return;
        pending.resolve();
        pending = undefined;
      } catch (error) {
        finish(error as Error);
      }
    },
    end: () => finish(),
    close: (_s, error) => finish(error),
    error: (_s, error) => finish(error),
  };

  const connecting = bun.connect({
    allowHalfOpen: true,
    socket: handlers,
    ...(target.kind === "unix"
      ? { unix: target.path }
      : { hostname: target.address ?? target.hostname, port: target.port, tls: target.tls }),
  });
  const s = await withTimeout(connecting, options.timeoutMs ?? CONNECT_TIMEOUT_MS);
  s.setNoDelay?.(true);
  if (target.kind === "tcp") s.setKeepAlive?.(true, 0);

  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      const n = send(s, chunk);
      if (n === chunk.byteLength) return;
      return new Promise((resolve, reject) => {
        pending = { rest: chunk.subarray(n), resolve, reject };
      });
    },
    close: () => s.shutdown(),
    abort: () => s.end(),
  });

  return { readable, writable, close: () => s.end() };
}

/** Rejects with `ETIMEDOUT` after `ms`; a late socket is closed. */
function withTimeout(connecting: Promise<BunSocket>, ms: number): Promise<BunSocket> {
  let timer: Alarm | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = deadlines.after(ms, () => {
      connecting.then((s) => s.end(), () => {});
      reject(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" }));
    });
  });
  return Promise.race([connecting, timeout]).finally(() => timer!.stop());
}

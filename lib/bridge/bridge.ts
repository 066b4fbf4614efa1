/**
 * The byte pump between one WebSocket and one target connection.
 *
 * Data flow: client messages are read from `ws.readable` and written to
 * `conn.writable` (client → target); target bytes are read from
 * `conn.readable` and written to `ws.writable` (target → client), or through
 * their `reader` and `writer` where an adapter offers them. Each side's
 * readable pauses its socket while full and each writable settles only once
 * its socket has room, so a slow reader on either side holds the other side
 * back instead of growing memory. Close rules follow upstream websockify:
 * target EOF flushes and closes 1000 "Target closed"; a client close flushes
 * its data, half-closes the target and waits briefly for the target to close.
 *
 * @module
 */
import { LINGER_MS } from "../limits.ts";
import { decodeBase64, encodeBase64 } from "../protocol/base64.ts";
import { READY } from "./chunks.ts";
import {
  CLOSE_GOING_AWAY,
  CLOSE_INTERNAL_ERROR,
  CLOSE_INVALID_DATA,
  CLOSE_NORMAL,
  CLOSE_REASON,
  CLOSE_UNSUPPORTED,
} from "../protocol/close_codes.ts";
import type { ChunkReader, ChunkWriter, CloseInfo, Conn, WsConn } from "../types.ts";

/**
 * What the bridge needs of an abort signal. An `AbortSignal` has it, and so
 * does a {@link StopSignal}, which thousands of sessions can share.
 */
export interface AbortLike {
  /** True once the stop has happened. */
  readonly aborted: boolean;
  /** Calls `listener` once when the stop happens. */
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  /** Forgets `listener`. */
  removeEventListener(type: "abort", listener: () => void): void;
}

/**
 * One stop for many sessions: a set of listeners. An `AbortController` per
 * session showed in the Node handshake profile (`bench/README.md`, "Figures
 * behind design choices"), and one shared `AbortSignal` warns past 10
 * listeners.
 *
 * @example
 * ```ts
 * import type { Conn, WsConn } from "../types.ts";
 * import { bridge, StopSignal } from "./bridge.ts";
 *
 * const stop = new StopSignal();
 * const serve = (ws: WsConn, connect: () => Promise<Conn>) =>
 *   bridge(ws, connect, { signal: stop });
 * // at shutdown:
 * stop.abort(); // every session that serve() started closes with 1001
 * ```
 */
export class StopSignal implements AbortLike {
  #listeners = new Set<() => void>();
  #aborted = false;

  /** True once {@link abort} has been called. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** Calls every listener once; later listeners are not called. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    for (const listener of listeners) listener();
  }

  /** Calls `listener` once on {@link abort}. */
  addEventListener(_type: "abort", listener: () => void): void {
    if (!this.#aborted) this.#listeners.add(listener);
  }

  /** Forgets `listener`. */
  removeEventListener(_type: "abort", listener: () => void): void {
    this.#listeners.delete(listener);
  }
}

/** Options for {@link bridge}. */
export interface BridgeOptions {
  /** Aborting closes the session with 1001 (server shutdown). */
  signal?: AbortLike;
  /** Ping interval; a client that misses two pongs in a row is dropped. */
  heartbeatMs?: number;
  /** How long the target may stay open after the client has gone. */
  lingerMs?: number;
  /** Sees every chunk as it passes (`--record`, `--traffic`). */
  tap?: (from: "client" | "target", chunk: Uint8Array) => void;
}

/** What happened in one session. */
export interface BridgeStats {
  /** Bytes from the client to the target. */
  clientBytes: number;
  /** Bytes from the target to the client. */
  targetBytes: number;
  /** False when the target could not be reached. */
  connected: boolean;
  /** The WebSocket close as the client saw it. */
  close: CloseInfo;
  /** Why the session ended early, if it did. */
  error?: unknown;
}

const noop = () => {};

/**
 * Connects to the target and pumps bytes both ways until both sides close.
 *
 * @example
 * ```ts
 * import type { Conn, WsConn } from "../types.ts";
 * import { bridge } from "./bridge.ts";
 *
 * async function serve(ws: WsConn, connect: () => Promise<Conn>) {
 *   const stats = await bridge(ws, connect, { heartbeatMs: 30_000 });
 *   console.log(stats.clientBytes, stats.targetBytes, stats.close.code);
 * }
 * ```
 */
export async function bridge(
  ws: WsConn,
  connect: () => Promise<Conn>,
  options: BridgeOptions = {},
): Promise<BridgeStats> {
  const stats: Omit<BridgeStats, "close"> = {
    clientBytes: 0,
    targetBytes: 0,
    connected: false,
  };
  const fail = (error: unknown, code: number, reason: string) => {
    stats.error ??= error;
    ws.close(code, reason);
  };
  let conn: Conn;
  try {
    conn = await connect();
  } catch (error) {
    fail(error, CLOSE_INTERNAL_ERROR, CLOSE_REASON.connectFailed);
    (ws.reader ?? ws.readable).cancel().catch(noop);
    return { ...stats, close: await ws.closed };
  }
  stats.connected = true;
  const { tap, signal } = options;
  const base64 = ws.protocol === "base64";
  const stopHeartbeat = startHeartbeat(ws, options.heartbeatMs, () => {
    stats.error ??= new Error("Client missed two pongs in a row");
    ws.abort();
  });
  let linger: ReturnType<typeof setTimeout> | undefined;
  let clientDone = false;
  const onAbort = () => {
    ws.close(CLOSE_GOING_AWAY, CLOSE_REASON.shuttingDown);
    if (clientDone) conn.close(); // shutting down: no lingering for the target
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();

  // Each direction is a chain of callbacks, not an async loop: a suspended
  // async function stays in memory for the session's whole life
  // (`bench/README.md`, "Figures behind design choices").
  return new Promise<BridgeStats>((resolve) => {
    let running = 2;
    const ended = () => {
      if (--running > 0) return;
      clearTimeout(linger);
      conn.close();
      stopHeartbeat();
      signal?.removeEventListener("abort", onAbort);
      ws.closed.then((close) => resolve({ ...stats, close }));
    };

    // Client → target. Afterwards the target gets a moment to finish, then is cut.
    const fromClient = ws.reader ?? ws.readable.getReader();
    const toTarget = conn.writer ?? conn.writable.getWriter();
    const clientEnded = () => {
      fromClient.cancel().catch(noop);
      clientDone = true;
      const ms = signal?.aborted ? 0 : options.lingerMs ?? LINGER_MS;
      linger = setTimeout(() => conn.close(), ms);
      ended();
    };
    const clientFailed = (error: unknown) => {
      const invalid = error instanceof SyntaxError;
      fail(
        error,
        invalid ? CLOSE_INVALID_DATA : CLOSE_INTERNAL_ERROR,
        invalid ? CLOSE_REASON.invalidBase64 : CLOSE_REASON.targetError,
      );
      toTarget.abort(error).catch(noop);
      clientEnded();
    };
    pump(
      fromClient,
      toTarget,
      (value) => {
        let bytes: Uint8Array;
        if (typeof value !== "string") bytes = value;
        else if (base64) bytes = decodeBase64(value);
        else {
          ws.close(CLOSE_UNSUPPORTED, CLOSE_REASON.textUnsupported);
          return undefined;
        }
        stats.clientBytes += bytes.byteLength;
        tap?.("client", bytes);
        return bytes;
      },
      () => toTarget.close().then(clientEnded, clientFailed),
      clientFailed,
    );

    // Target → client. Target EOF closes the WebSocket once its data is out.
    const fromTarget = conn.reader ?? conn.readable.getReader();
    const toClient = ws.writer ?? ws.writable.getWriter();
    const targetFailed = (error: unknown) => {
      fail(error, CLOSE_INTERNAL_ERROR, CLOSE_REASON.targetError);
      fromTarget.cancel().catch(noop);
      ended();
    };
    pump(fromTarget, toClient, (value) => {
      stats.targetBytes += value.byteLength;
      tap?.("target", value);
      return base64 ? encodeBase64(value) : value;
    }, () =>
      toClient.close().then(() => {
        ws.close(CLOSE_NORMAL, CLOSE_REASON.targetClosed);
        ended();
      }, targetFailed), targetFailed);
  });
}

/**
 * Moves chunks from `reader` through `convert` to `writer`, waiting for the
 * writer's `ready` before each write, until the reader is done or `convert`
 * returns undefined (`onDone`), or something fails (`onError`). Exactly one
 * of the two is called, once. Two closures per direction stay alive: the
 * helpers below are shared.
 */
function pump<T, U>(
  reader: ChunkReader<T>,
  writer: ChunkWriter<U>,
  convert: (value: T) => U | undefined,
  onDone: () => void,
  onError: (error: unknown) => void,
): void {
  let over = false;
  const fail = (error: unknown) => {
    if (over) return;
    over = true;
    onError(error);
  };
  const onRead = ({ value, done }: ReadableStreamReadResult<T>) => {
    if (over) return;
    let chunk: U | undefined;
    try {
      chunk = done ? undefined : convert(value);
    } catch (error) {
      return fail(error);
    }
    if (chunk === undefined) {
      over = true;
      try {
        onDone();
      } catch (error) {
        onError(error);
      }
      return;
    }
    const room = writer.ready;
    if (room === READY) writeThenRead(writer, chunk, reader, onRead, fail);
    else room.then(() => over || writeThenRead(writer, chunk, reader, onRead, fail), fail);
  };
  readNext(reader, onRead, fail);
}

function readNext<T>(
  reader: ChunkReader<T>,
  onRead: (result: ReadableStreamReadResult<T>) => void,
  fail: (error: unknown) => void,
): void {
  try {
    reader.read().then(onRead, fail);
  } catch (error) {
    fail(error);
  }
}

function writeThenRead<T, U>(
  writer: ChunkWriter<U>,
  chunk: U,
  reader: ChunkReader<T>,
  onRead: (result: ReadableStreamReadResult<T>) => void,
  fail: (error: unknown) => void,
): void {
  try {
    // The built-in writers return READY: no promise per chunk for a catch.
    const written = writer.write(chunk);
    if (written !== READY) written.catch(noop);
  } catch (error) {
    return fail(error);
  }
  readNext(reader, onRead, fail);
}

/** Pings every `ms`; drops a client that has missed two pongs in a row. */
function startHeartbeat(
  ws: WsConn,
  ms: number | undefined,
  onTimeout: () => void,
): () => void {
  if (!ms || ms <= 0) return noop;
  let missed = 0;
  ws.onpong = () => (missed = 0);
  const timer = setInterval(() => {
    if (missed >= 2) onTimeout();
    else {
      missed++;
      ws.ping();
    }
  }, ms);
  return () => {
    clearInterval(timer);
    ws.onpong = null;
  };
}

/**
 * The byte pump between one WebSocket and one target connection.
 *
 * Data flow: two pumps (`./pump.ts`), client messages to the target and
 * target bytes to the client, each from a side's `reader` to the other's
 * `writer` (or their Web Streams where an adapter offers no reader or
 * writer). A reader pauses its socket while full and a writer's `ready`
 * waits until its socket has room, so a slow reader on either side holds
 * the other side back instead of growing memory. Close rules follow upstream websockify:
 * target EOF flushes and closes 1000 "Target closed"; a client close flushes
 * its data, half-closes the target and waits briefly for the target to close.
 *
 * @module
 */
import { type Alarm, deadlines } from "../deadlines.ts";
import { LINGER_MS } from "../limits.ts";
import { decodeBase64, encodeBase64 } from "../protocol/base64.ts";
import { startHeartbeat } from "./heartbeat.ts";
import { pump } from "./pump.ts";
import type { AbortLike } from "./stop_signal.ts";
import {
  CLOSE_GOING_AWAY,
  CLOSE_INTERNAL_ERROR,
  CLOSE_INVALID_DATA,
  CLOSE_NORMAL,
  CLOSE_REASON,
  CLOSE_UNSUPPORTED,
} from "../protocol/close_codes.ts";
import type { CloseInfo, Conn, WsConn } from "../types.ts";

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
  /**
   * The object to count into, so that the caller can read a live session's
   * bytes (`--metrics`); a fresh one by default.
   */
  counts?: Omit<BridgeStats, "close">;
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
  /** Which side ended the session first. */
  closedBy?: "client" | "target" | "server" | "error";
}

const noop = () => {};
const ONCE = { once: true };

/** Zero counts for {@link BridgeOptions.counts}. */
export function newCounts(): Omit<BridgeStats, "close"> {
  return { clientBytes: 0, targetBytes: 0, connected: false };
}

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
  const stats: Omit<BridgeStats, "close"> = options.counts ?? newCounts();
  const fail = (error: unknown, code: number, reason: string) => {
    stats.error ??= error;
    stats.closedBy ??= "error";
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
    stats.closedBy ??= "error";
    ws.abort();
  });
  let linger: Alarm | undefined;
  let clientDone = false;
  const onAbort = () => {
    stats.closedBy ??= "server";
    ws.close(CLOSE_GOING_AWAY, CLOSE_REASON.shuttingDown);
    if (clientDone) conn.close(); // shutting down: no lingering for the target
  };
  signal?.addEventListener("abort", onAbort, ONCE);
  if (signal?.aborted) onAbort();

  // Each direction is a chain of callbacks, not an async loop: a suspended
  // async function stays in memory for the session's whole life
  // (`bench/README.md`, "Figures behind design choices").
  return new Promise<BridgeStats>((resolve) => {
    let running = 2;
    const ended = () => {
      if (--running > 0) return;
      linger?.stop();
      conn.close();
      stopHeartbeat();
      signal?.removeEventListener("abort", onAbort);
      ws.closed.then((close) => resolve({ ...stats, close }));
    };

    // Client → target. Afterwards the target gets a moment to finish, then is cut.
    const fromClient = ws.reader ?? ws.readable.getReader();
    const toTarget = conn.writer ?? conn.writable.getWriter();
    const clientEnded = () => {
      stats.closedBy ??= "client";
      fromClient.cancel().catch(noop);
      clientDone = true;
      const ms = signal?.aborted ? 0 : options.lingerMs ?? LINGER_MS;
      linger = deadlines.after(ms, () => conn.close());
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
          stats.closedBy ??= "error";
          ws.close(CLOSE_UNSUPPORTED, CLOSE_REASON.textUnsupported);
          return undefined;
        }
        stats.clientBytes += bytes.byteLength;
        tap?.("client", bytes);
        return bytes;
      },
      () => {
        stats.closedBy ??= "client";
        toTarget.close().then(clientEnded, clientFailed);
      },
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
        stats.closedBy ??= "target";
        ws.close(CLOSE_NORMAL, CLOSE_REASON.targetClosed);
        ended();
      }, targetFailed), targetFailed);
  });
}

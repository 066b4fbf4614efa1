/**
 * Sessions: runs one {@link bridge} per accepted WebSocket, logs its open
 * and close lines, and closes them all on shutdown.
 *
 * @module
 */
import { type AbortLike, bridge, StopSignal } from "./bridge.ts";
import { errorText } from "./errors.ts";
import type { Logger } from "./log.ts";
import { formatAddr, formatTarget } from "./target.ts";
import type { Conn, ConnInfo, Target, WsConn } from "./types.ts";

/** Records one session (`--record`). */
export interface Recorder {
  /** Where the recording goes, for the log. */
  readonly path: string;
  frame(fromClient: boolean, bytes: Uint8Array): void;
  /** Writes the end marker. */
  close(): Promise<void>;
}

/** Options for {@link createSessions}. */
export interface SessionOptions {
  connect: (target: Target) => Promise<Conn>;
  log: Logger;
  /** Ping interval in milliseconds (`--heartbeat`). */
  heartbeatMs?: number;
  /** Called when a session has ended. */
  onSessionEnd?: () => void;
  /** Starts a recording for the connection with this id. */
  record?: (id: number) => Recorder;
}

/** The live sessions of one server. */
export interface Sessions {
  /** Starts a session for an accepted WebSocket. */
  open(ws: WsConn, target: Target, info: ConnInfo): void;
  /** The number of sessions still running. */
  readonly size: number;
  /** Closes every session with 1001 and waits for them to end. */
  shutdown(): Promise<void>;
}

/**
 * Creates the session table for a server.
 *
 * @example
 * ```ts
 * const sessions = createSessions({ connect: connectNode, log });
 * ```
 */
export function createSessions(options: SessionOptions): Sessions {
  const { log } = options;
  const running = new Set<Promise<void>>();
  const stop = new StopSignal();

  const run = async (ws: WsConn, target: Target, info: ConnInfo, signal: AbortLike) => {
    const name = `#${info.id} ${formatAddr(info.remote)} -> ${formatTarget(target)}`;
    const started = performance.now();
    const scheme = info.tls ? "wss://" : "ws://";
    const cn = info.peerCn === undefined ? "" : `, client CN '${info.peerCn}'`;
    log.info(`${name}: open (${scheme}, protocol ${ws.protocol || "none"}${cn})`);
    const recorder = options.record?.(info.id);
    if (recorder) log.info(`${name}: opening record file: ${recorder.path}`);
    const stats = await bridge(ws, () => options.connect(target), {
      signal,
      heartbeatMs: options.heartbeatMs,
      tap: tapFor(log.traffic, recorder),
    }).finally(() => recorder?.close());
    if (!stats.connected) {
      log.warn(`${name}: Failed to connect to ${formatTarget(target)}: ${errorText(stats.error)}`);
    } else if (stats.error) log.debug(`${name}: ${errorText(stats.error)}`);
    const seconds = ((performance.now() - started) / 1000).toFixed(3);
    const { code, reason } = stats.close;
    log.info(
      `${name}: closed ${code}${reason ? ` "${reason}"` : ""} after ${seconds} s,` +
        ` client->target ${stats.clientBytes} B, target->client ${stats.targetBytes} B`,
    );
  };

  return {
    open(ws, target, info) {
      const session = run(ws, target, info, stop)
        .catch((error) => log.error(`#${info.id}: ${errorText(error)}`))
        .finally(() => {
          running.delete(session);
          options.onSessionEnd?.();
        });
      running.add(session);
    },
    get size() {
      return running.size;
    },
    async shutdown() {
      stop.abort();
      await Promise.all(running);
    },
  };
}

/** One tap for `--traffic` and `--record`, or none when both are off. */
function tapFor(
  traffic: ((token: string) => void) | undefined,
  recorder: Recorder | undefined,
): ((from: "client" | "target", chunk: Uint8Array) => void) | undefined {
  if (!traffic && !recorder) return undefined;
  return (from, chunk) => {
    traffic?.(from === "client" ? "}" : "{");
    recorder?.frame(from === "client", chunk);
  };
}

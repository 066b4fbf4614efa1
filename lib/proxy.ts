/**
 * Sessions: runs one {@link bridge} per accepted WebSocket, logs its open
 * and close lines, and closes them all on shutdown.
 *
 * @module
 */
import { bridge, type BridgeStats, StopSignal } from "./bridge.ts";
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
  const running = new Map<WsConn, Promise<void>>();
  const stop = new StopSignal();

  // One async function per session, with no .catch/.finally chain and no
  // strings kept while it runs: each of those stays in memory for the
  // session's whole life, and a proxy may hold 10,000 of them.
  const run = async (ws: WsConn, target: Target, info: ConnInfo) => {
    const started = performance.now();
    try {
      const scheme = info.tls ? "wss://" : "ws://";
      const cn = info.peerCn === undefined ? "" : `, client CN '${info.peerCn}'`;
      log.info(`${nameOf(info, target)}: open (${scheme}, protocol ${ws.protocol || "none"}${cn})`);
      const recorder = options.record?.(info.id);
      if (recorder) log.info(`${nameOf(info, target)}: opening record file: ${recorder.path}`);
      let stats: BridgeStats;
      try {
        stats = await bridge(ws, connectTo(options.connect, target), {
          signal: stop,
          heartbeatMs: options.heartbeatMs,
          tap: tapFor(log.traffic, recorder),
        });
      } finally {
        await recorder?.close();
      }
      const name = nameOf(info, target);
      if (!stats.connected) {
        log.warn(
          `${name}: Failed to connect to ${formatTarget(target)}: ${errorText(stats.error)}`,
        );
      } else if (stats.error) log.debug(`${name}: ${errorText(stats.error)}`);
      const seconds = ((performance.now() - started) / 1000).toFixed(3);
      const { code, reason } = stats.close;
      log.info(
        `${name}: closed ${code}${reason ? ` "${reason}"` : ""} after ${seconds} s,` +
          ` client->target ${stats.clientBytes} B, target->client ${stats.targetBytes} B`,
      );
    } catch (error) {
      log.error(`#${info.id}: ${errorText(error)}`);
    } finally {
      running.delete(ws);
      options.onSessionEnd?.();
    }
  };

  return {
    open(ws, target, info) {
      running.set(ws, DONE);
      const session = run(ws, target, info);
      // A session that failed before its first await has already left the table.
      if (running.has(ws)) running.set(ws, session);
    },
    get size() {
      return running.size;
    },
    async shutdown() {
      stop.abort();
      await Promise.all(running.values());
    },
  };
}

const DONE = Promise.resolve();

/** How the log names a session. */
function nameOf(info: ConnInfo, target: Target): string {
  return `#${info.id} ${formatAddr(info.remote)} -> ${formatTarget(target)}`;
}

/** A connect function for one target, made outside `run` so it keeps only these two. */
function connectTo(connect: (target: Target) => Promise<Conn>, target: Target) {
  return () => connect(target);
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

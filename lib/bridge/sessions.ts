/**
 * Sessions: runs one {@link bridge} per accepted WebSocket, logs its open
 * and close lines, and closes them all on shutdown.
 *
 * @module
 */
import { bridge, type BridgeStats, newCounts } from "./bridge.ts";
import { createSessionLimits } from "./session_limits.ts";
import { StopSignal } from "./stop_signal.ts";
import { errorText } from "../errors.ts";
import { type Logger, tokenLabel } from "../log.ts";
import type { LiveBytes, Observer } from "../metrics.ts";
import { clientFields } from "../http/refuse.ts";
import { clientLabel, formatTarget } from "../target.ts";
import type { Conn, ConnInfo, Target, WsConn } from "../types.ts";

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
  /** Opens the connection to a session's target; `info` names the client. */
  connect: (target: Target, info: ConnInfo) => Promise<Conn>;
  log: Logger;
  /** Ping interval in milliseconds (`--heartbeat`). */
  heartbeatMs?: number;
  /** Called when a session has ended. */
  onSessionEnd?: () => void;
  /** Starts a recording for the connection with this id. */
  record?: (id: number) => Recorder;
  /** Close a session this old with 1008 (`--max-session-duration`); 0 is off. */
  maxDurationMs?: number;
  /** Close a session with no payload for this long with 1000 (`--session-idle-timeout`). */
  idleTimeoutMs?: number;
  /** Told of every session's start and end (`--metrics`). */
  observer?: Observer;
}

/** The live sessions of one server. */
export interface Sessions {
  /**
   * Starts a session for an accepted WebSocket; `token` is the raw token that
   * chose `target`, `release` is called once the session has ended.
   */
  open(ws: WsConn, target: Target, info: ConnInfo, token?: string, release?: () => void): void;
  /** The number of sessions still running. */
  readonly size: number;
  /** The live sessions' bytes so far; zeros without an `observer`. */
  liveBytes(): LiveBytes;
  /** Closes every session with 1001 and waits for them to end. */
  shutdown(): Promise<void>;
}

/**
 * Creates the session table for a server.
 *
 * @example
 * ```ts
 * import { defaultConnect } from "../../adapters/connect/connect.ts";
 * import { SILENT_LOGGER } from "../log.ts";
 * import { createSessions } from "./sessions.ts";
 *
 * const sessions = createSessions({ connect: defaultConnect(), log: SILENT_LOGGER });
 * await sessions.shutdown(); // none open yet
 * ```
 */
export function createSessions(options: SessionOptions): Sessions {
  const { log } = options;
  const running = new Map<WsConn, Promise<void>>();
  // Only with an observer: each live session's byte counts, read at scrape time.
  const { observer } = options;
  const live = observer && new Map<WsConn, Omit<BridgeStats, "close">>();
  const stop = new StopSignal();
  const limits = createSessionLimits({
    maxDurationMs: options.maxDurationMs,
    idleMs: options.idleTimeoutMs,
  });

  // While a session runs, it keeps one pending `.then` on its bridge: no
  // suspended async function, no .catch/.finally chain and no log strings.
  // Each of those stays in memory for the session's whole life, and a proxy
  // may hold 10,000 sessions.
  const run = (
    ws: WsConn,
    target: Target,
    info: ConnInfo,
    token: string | undefined,
    release: (() => void) | undefined,
  ): Promise<void> => {
    const started = performance.now();
    // The label only: the session keeps no whole token.
    const label = token === undefined ? undefined : tokenLabel(token);
    let recorder: Recorder | undefined;
    // Live counts for the session limits and the metrics, when either is on.
    const counts = limits || live ? newCounts() : undefined;
    const watched = limits && counts && limits.watch(ws, counts);
    const end = async (stats?: BridgeStats, error?: unknown) => {
      if (watched) limits?.unwatch(watched);
      release?.();
      if (live && counts) {
        // In one step with leaving `live`, so a scrape counts these bytes once.
        live.delete(ws);
        observer!.closed(
          counts.clientBytes,
          counts.targetBytes,
          (performance.now() - started) / 1000,
        );
      }
      try {
        await recorder?.close();
        if (stats) logClose(info, target, label, stats, started);
        else log.error(`#${info.id}: ${errorText(error)}`);
      } catch (error) {
        log.error(`#${info.id}: ${errorText(error)}`);
      } finally {
        running.delete(ws);
        options.onSessionEnd?.();
      }
    };
    try {
      // Not kept for the session's life: `end` does not use it.
      const name = clientLabel(info, target);
      const scheme = info.tls ? "wss://" : "ws://";
      const cn = info.peerCn === undefined ? "" : `, client CN '${info.peerCn}'`;
      const protocol = ws.protocol || "none";
      const message = `${name}: open (${scheme}, protocol ${protocol}${cn})`;
      // The JSON fields only for a logger that writes them (see Logger.event).
      if (log.event) {
        log.event("info", message, {
          ...sessionFields("open", info, target, label),
          tls: info.tls,
          protocol,
          client_cn: info.peerCn,
        });
      } else log.info(message);
      if (live && counts) {
        live!.set(ws, counts);
        observer!.opened();
      }
      recorder = options.record?.(info.id);
      if (recorder) log.info(`${name}: opening record file: ${recorder.path}`);
      return bridge(ws, connectTo(options.connect, target, info), {
        signal: stop,
        heartbeatMs: options.heartbeatMs,
        tap: tapFor(log.traffic, recorder),
        counts,
      }).then(end, (error) => end(undefined, error));
    } catch (error) {
      return end(undefined, error);
    }
  };

  /** The close line, and the failure that ended the session, if any. */
  const logClose = (
    info: ConnInfo,
    target: Target,
    label: string | undefined,
    stats: BridgeStats,
    started: number,
  ) => {
    const name = clientLabel(info, target);
    if (!stats.connected) {
      log.warn(`${name}: Failed to connect to ${formatTarget(target)}: ${errorText(stats.error)}`);
    } else if (stats.error && log.verbose) log.debug(`${name}: ${errorText(stats.error)}`);
    const ms = performance.now() - started;
    const { code, reason } = stats.close;
    const message = `${name}: closed ${code}${reason ? ` "${reason}"` : ""} after ` +
      `${(ms / 1000).toFixed(3)} s, client->target ${stats.clientBytes} B,` +
      ` target->client ${stats.targetBytes} B`;
    if (!log.event) return log.info(message);
    log.event("info", message, {
      ...sessionFields("close", info, target, label),
      bytes_to_target: stats.clientBytes,
      bytes_to_client: stats.targetBytes,
      duration_ms: Math.round(ms),
      close_code: code,
      close_reason: reason,
      closed_by: stats.closedBy,
    });
  };

  return {
    open(ws, target, info, token, release) {
      // `end` removes the session after its first await, so never before this.
      running.set(ws, run(ws, target, info, token, release));
    },
    get size() {
      return running.size;
    },
    liveBytes() {
      let toTarget = 0;
      let toClient = 0;
      for (const counts of live?.values() ?? []) {
        toTarget += counts.clientBytes;
        toClient += counts.targetBytes;
      }
      return { toTarget, toClient };
    },
    async shutdown() {
      stop.abort();
      await Promise.all(running.values());
    },
  };
}

/** The fields every session line carries in JSON logs; `token` is a `tokenLabel()`. */
function sessionFields(event: string, info: ConnInfo, target: Target, token?: string) {
  return { event, ...clientFields(info), target: formatTarget(target), token };
}

/** A connect function for one target, made outside `run` so it keeps only these three. */
function connectTo(
  connect: (target: Target, info: ConnInfo) => Promise<Conn>,
  target: Target,
  info: ConnInfo,
) {
  return () => connect(target, info);
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

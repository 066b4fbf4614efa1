/**
 * `--max-session-duration` and `--session-idle-timeout`: one shared sweep
 * every {@link SESSION_SWEEP_MS} over the watched sessions, comparing their
 * byte counters with the last sweep's, so nothing runs per chunk and no
 * timer is set per session. Heartbeat pings and pongs are not counted by the
 * bridge, so they do not keep a session alive. The sweep runs only while a
 * session is watched.
 *
 * @module
 */
import { SESSION_SWEEP_MS } from "../limits.ts";
import { CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CLOSE_REASON } from "../protocol/close_codes.ts";
import type { WsConn } from "../types.ts";
import type { BridgeStats } from "./bridge.ts";

/** The counters the bridge keeps, which the sweep reads. */
export type LiveStats = Omit<BridgeStats, "close">;

/** Options for {@link createSessionLimits}; milliseconds, 0 for off. */
export interface SessionLimitOptions {
  readonly maxDurationMs?: number;
  readonly idleMs?: number;
}

/** A watched session; pass it back to `unwatch`. */
export interface Watched {
  readonly ws: WsConn;
  readonly stats: LiveStats;
  readonly started: number;
  /** Bytes both ways at the last sweep that saw them change. */
  bytes: number;
  /** When that sweep ran. */
  active: number;
}

/** The session limits of one server. */
export interface SessionLimits {
  /** Watches a session; `stats` is the object its bridge counts into. */
  watch(ws: WsConn, stats: LiveStats): Watched;
  unwatch(entry: Watched): void;
}

/**
 * The session limits, or undefined when both are off.
 *
 * @example
 * ```ts
 * import { createSessionLimits } from "./session_limits.ts";
 *
 * const limits = createSessionLimits({ maxDurationMs: 3_600_000 });
 * console.log(limits !== undefined); // true: the bridge's stats get watched
 * ```
 */
export function createSessionLimits(options: SessionLimitOptions): SessionLimits | undefined {
  const { maxDurationMs = 0, idleMs = 0 } = options;
  if (maxDurationMs <= 0 && idleMs <= 0) return undefined;
  const watched = new Set<Watched>();
  let timer: ReturnType<typeof setInterval> | undefined;

  const end = (entry: Watched, code: number, reason: string) => {
    watched.delete(entry);
    entry.stats.closedBy ??= "server";
    entry.ws.close(code, reason);
  };
  const sweep = () => {
    const now = performance.now();
    for (const entry of watched) {
      if (maxDurationMs > 0 && now - entry.started >= maxDurationMs) {
        end(entry, CLOSE_POLICY_VIOLATION, CLOSE_REASON.sessionTooLong);
        continue;
      }
      if (idleMs <= 0) continue;
      const bytes = entry.stats.clientBytes + entry.stats.targetBytes;
      if (bytes !== entry.bytes) {
        entry.bytes = bytes;
        entry.active = now;
      } else if (now - entry.active >= idleMs) end(entry, CLOSE_NORMAL, CLOSE_REASON.sessionIdle);
    }
    if (watched.size === 0) stop();
  };
  const stop = () => {
    clearInterval(timer);
    timer = undefined;
  };
  return {
    watch(ws, stats) {
      const now = performance.now();
      const entry: Watched = { ws, stats, started: now, bytes: 0, active: now };
      watched.add(entry);
      timer ??= setInterval(sweep, SESSION_SWEEP_MS);
      return entry;
    },
    unwatch(entry) {
      watched.delete(entry);
      if (watched.size === 0) stop();
    },
  };
}

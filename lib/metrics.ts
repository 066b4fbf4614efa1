/**
 * What the proxy reports for `--metrics`: events as plain calls on an
 * {@link Observer}, so that the core stays free of any metrics library
 * (the Prometheus registry is in `adapters/metrics/`). Calls happen per
 * session and per upgrade, never per chunk: live byte counts are read at
 * scrape time from the sessions instead.
 *
 * @module
 */
import { ConfigError, describeError, errorText } from "./errors.ts";
import { formatAddr } from "./target.ts";
import type { TokenPlugin } from "./plugins/plugins.ts";
import type { NetAddr, Target } from "./types.ts";

/** Receives the proxy's events; every method must be cheap and must not throw. */
export interface Observer {
  /** A session reached 101. */
  opened(): void;
  /** A session ended after `seconds`, with its payload bytes each way. */
  closed(toTarget: number, toClient: number, seconds: number): void;
  /** An upgrade was refused with this HTTP status. */
  refused(status: number): void;
  /** A target connection attempt ended: connected or not, after `seconds`. */
  connected(ok: boolean, seconds: number): void;
  /** A token lookup took `seconds` (failed or not). */
  tokenLookup(seconds: number): void;
}

/** Payload bytes of the live sessions, so far. */
export interface LiveBytes {
  toTarget: number;
  toClient: number;
}

/**
 * `connect` that reports each attempt's outcome and time to `observer`.
 *
 * @example
 * ```ts
 * import { observeConnect } from "./metrics.ts";
 * import type { NetAddr, Target, TargetConn } from "./types.ts";
 *
 * const connect = (_: Target): Promise<TargetConn> => Promise.reject(new Error("refused"));
 * const timed = observeConnect(connect, {
 *   opened() {},
 *   closed() {},
 *   refused() {},
 *   connected: (ok, seconds) => console.log(ok, seconds),
 *   tokenLookup() {},
 * });
 * await timed({ kind: "tcp", hostname: "127.0.0.1", port: 1 }).catch(() => {});
 * ```
 */
export function observeConnect<C, A extends unknown[]>(
  connect: (target: Target, ...rest: A) => Promise<C>,
  observer: Observer,
): (target: Target, ...rest: A) => Promise<C> {
  return async (target, ...rest) => {
    const started = performance.now();
    try {
      const conn = await connect(target, ...rest);
      observer.connected(true, (performance.now() - started) / 1000);
      return conn;
    } catch (error) {
      observer.connected(false, (performance.now() - started) / 1000);
      throw error;
    }
  };
}

/** `plugin` with each lookup's time reported to `observer`; `close` and `ready` kept. */
export function observeTokens(plugin: TokenPlugin, observer: Observer): TokenPlugin {
  return {
    async lookup(token) {
      const started = performance.now();
      try {
        return await plugin.lookup(token);
      } finally {
        observer.tokenLookup((performance.now() - started) / 1000);
      }
    },
    close: plugin.close && (() => plugin.close!()),
    ready: plugin.ready && (() => plugin.ready!()),
  };
}

/** What `/readyz` answers: ready or not, and each check's result. */
export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, boolean | string>>;
}

/** What {@link checkReadiness} looks at. */
export interface ReadinessProbe {
  /** The proxy listens (it has not been closed). */
  readonly listening: boolean;
  /** The proxy is draining (`--drain-timeout`): it takes no new sessions. */
  readonly draining: boolean;
  /** The token store's check, when there is one; "ok" or why not. */
  readonly tokens?: () => Promise<void>;
}

/**
 * `/readyz`'s answer: ready when listening, not draining and the token
 * store answered within `timeoutMs` (a hung store counts as failed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkReadiness } from "./metrics.ts";
 *
 * const readiness = await checkReadiness({
 *   listening: true,
 *   draining: false,
 *   tokens: () => Promise.reject(new Error("Redis at 127.0.0.1:6379 is unavailable")),
 * }, 1000);
 * assert.deepEqual(readiness, {
 *   ready: false,
 *   checks: { listening: true, draining: false, tokens: "Redis at 127.0.0.1:6379 is unavailable" },
 * });
 * ```
 */
export async function checkReadiness(
  probe: ReadinessProbe,
  timeoutMs: number,
): Promise<Readiness> {
  const { listening, draining } = probe;
  const checks: Record<string, boolean | string> = { listening, draining };
  if (probe.tokens) checks.tokens = await withTimeout(probe.tokens(), timeoutMs);
  return { ready: listening && !draining && (checks.tokens ?? "ok") === "ok", checks };
}

/** "ok" when `check` resolves within `ms`, else why not. */
async function withTimeout(check: Promise<void>, ms: number): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer in ${ms} ms`), ms);
  });
  try {
    return await Promise.race([check.then(() => "ok", errorText), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The one-line error of a metrics listener that cannot listen at `addr`. */
export function metricsListenError(addr: NetAddr, error: unknown): ConfigError {
  return new ConfigError(
    `Cannot listen on ${formatAddr(addr)} for --metrics: ${describeError(error)}`,
  );
}

/** The one-line refusal of a metrics port that is the proxy's own. */
export function samePortError(port: number): ConfigError {
  return new ConfigError(`--metrics cannot use the proxy's own port ${port}`);
}

/**
 * When a server stops by itself, with upstream's real semantics:
 * `--timeout N` stops accepting N s after start (sessions continue, then the
 * process exits); `--idle-timeout N` exits after N s with no connection at all
 * (HTTP included), checked once a second; `--run-once` exits after the first
 * WebSocket session ends.
 *
 * @module
 */
import { LIFECYCLE_TICK_MS } from "../limits.ts";
import type { Logger } from "../log.ts";

/** Options for {@link watchLifecycle}; seconds, 0 for off. */
export interface LifecycleOptions {
  readonly runOnce?: boolean;
  readonly timeout?: number;
  readonly idleTimeout?: number;
  readonly log: Logger;
}

/** What the watcher needs from the server. */
export interface LifecycleHooks {
  /** Open connections, HTTP and WebSocket. */
  connections(): number;
  /** Stops accepting; live connections continue. */
  stopListening(): void;
  /** Stops everything; the server is done. */
  shutdown(): void;
}

/** Returned by {@link watchLifecycle}. */
export interface Lifecycle {
  /** Call when a WebSocket session has ended. */
  sessionEnded(): void;
  dispose(): void;
}

/**
 * Watches a server and calls its hooks when one of the conditions is met.
 *
 * @example
 * ```ts
 * import { SILENT_LOGGER } from "../log.ts";
 * import { watchLifecycle } from "./lifecycle.ts";
 *
 * const lifecycle = watchLifecycle({ idleTimeout: 60, log: SILENT_LOGGER }, {
 *   connections: () => 0,
 *   stopListening: () => {},
 *   shutdown: () => console.log("no connection for 60 s"),
 * });
 * lifecycle.dispose();
 * ```
 */
export function watchLifecycle(options: LifecycleOptions, hooks: LifecycleHooks): Lifecycle {
  const { log, timeout = 0, idleTimeout = 0 } = options;
  const timers: ReturnType<typeof setTimeout>[] = [];
  let stopped = false;
  let idleSince = Date.now();
  const stopWhenEmpty = () => {
    if (hooks.connections() === 0) hooks.shutdown();
  };
  if (timeout > 0) {
    timers.push(setTimeout(() => {
      log.info(`listener exit due to --timeout ${timeout}`);
      stopped = true;
      hooks.stopListening();
      stopWhenEmpty();
    }, timeout * 1000));
  }
  // One tick a second, as upstream: idle accounting and the end of --timeout.
  if (timeout > 0 || idleTimeout > 0) {
    timers.push(setInterval(() => {
      if (stopped) return stopWhenEmpty();
      if (hooks.connections() > 0) idleSince = Date.now();
      else if (idleTimeout > 0 && Date.now() - idleSince > idleTimeout * 1000) {
        log.info(`listener exit due to --idle-timeout ${idleTimeout}`);
        hooks.shutdown();
      }
    }, LIFECYCLE_TICK_MS));
  }
  return {
    sessionEnded() {
      if (!options.runOnce) return;
      log.info("exiting due to --run-once");
      hooks.shutdown();
    },
    dispose: () => timers.forEach((t) => clearTimeout(t)),
  };
}

/**
 * The command's signal handlers: SIGINT and SIGTERM stop it, within a
 * bounded time; all handlers come off together just before it exits, so
 * that a run in a test leaves none behind.
 *
 * @module
 */
import type { CliHost, CliSignal } from "./host.ts";

/** The handlers one run has installed. */
export interface Signals {
  on(signal: CliSignal, handler: () => void): void;
  /** Calls `stop("SIGINT")` or `stop("SIGTERM")` on those signals. */
  onStop(stop: (signal: string) => void): void;
  /** Removes every handler installed through this object. */
  offAll(): void;
}

/**
 * Signal handlers on `host` that can be removed together.
 *
 * @example
 * ```ts
 * import { processHost } from "./host.ts";
 * import { signalsOf } from "./signals.ts";
 *
 * const signals = signalsOf(processHost());
 * signals.onStop((signal) => console.log(`stopping on ${signal}`));
 * signals.offAll(); // once stopped
 * ```
 */
export function signalsOf(host: CliHost): Signals {
  const installed: [CliSignal, () => void][] = [];
  const on = (signal: CliSignal, handler: () => void) => {
    host.on(signal, handler);
    installed.push([signal, handler]);
  };
  return {
    on,
    onStop(stop) {
      on("SIGINT", () => stop("SIGINT"));
      on("SIGTERM", () => stop("SIGTERM"));
    },
    offAll() {
      for (const [signal, handler] of installed.splice(0)) host.off(signal, handler);
    },
  };
}

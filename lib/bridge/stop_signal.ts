/**
 * One stop for many sessions: what the bridge needs of an abort signal, and
 * a light signal that thousands of sessions can share.
 *
 * @module
 */

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
 * import { bridge } from "./bridge.ts";
 * import { StopSignal } from "./stop_signal.ts";
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

/**
 * `--rate-limit`: at most N new sessions per key in any window of
 * {@link RATE_LIMIT_WINDOW_MS}, as a log of their times (oldest first), so
 * the wait until a slot frees is exact. Memory is bounded: at most N times
 * per key, at most `maxKeys` keys (least recently used first in the map,
 * so expired keys go first and, in a flood of new keys, the longest unseen).
 *
 * @module
 */
import { RATE_LIMIT_MAX_ADDRESSES, RATE_LIMIT_WINDOW_MS } from "../limits.ts";

/**
 * A sliding-window rate limit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RateLimiter } from "./rate_limit.ts";
 *
 * const limiter = new RateLimiter(2);
 * assert.equal(limiter.take("10.0.0.1", 0), 0);
 * assert.equal(limiter.take("10.0.0.1", 1000), 0);
 * assert.equal(limiter.take("10.0.0.1", 2000), 58_000); // the first frees at 60 s
 * ```
 */
export class RateLimiter {
  readonly #times = new Map<string, number[]>();

  constructor(
    readonly limit: number,
    readonly windowMs: number = RATE_LIMIT_WINDOW_MS,
    readonly maxKeys: number = RATE_LIMIT_MAX_ADDRESSES,
  ) {}

  /** Keys remembered now. */
  get size(): number {
    return this.#times.size;
  }

  /** Takes a slot for `key` at `now` (ms): 0, or else the ms until one frees. */
  take(key: string, now: number): number {
    let times = this.#times.get(key);
    if (times) {
      while (times.length > 0 && times[0]! <= now - this.windowMs) times.shift();
      if (times.length >= this.limit) return times[0]! + this.windowMs - now;
      this.#times.delete(key); // set again below: now the most recently used
    } else {
      times = [];
      this.#prune(now);
    }
    times.push(now);
    this.#times.set(key, times);
    return 0;
  }

  /** Gives back the slot `take(key, at)` took (the session did not start after all). */
  untake(key: string, at: number): void {
    const times = this.#times.get(key);
    const i = times?.lastIndexOf(at) ?? -1;
    if (i >= 0) times!.splice(i, 1);
    if (times?.length === 0) this.#times.delete(key);
  }

  /** Drops expired keys, then the least recently used while full. */
  #prune(now: number): void {
    for (const [key, times] of this.#times) {
      const expired = times[times.length - 1]! <= now - this.windowMs;
      if (!expired && this.#times.size < this.maxKeys) break;
      this.#times.delete(key);
    }
  }
}

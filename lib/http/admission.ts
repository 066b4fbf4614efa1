/**
 * Admission: which upgrades may become sessions, decided before the 101.
 * `--allow-client` first (403), then the connection caps and the rate limit
 * (503, 429), which reserve a slot, then the per-token cap once the token
 * is known (429). A refusal is returned as data for the app to answer and
 * log. Counts are per process: each `--workers` process keeps its own.
 *
 * @module
 */
import { addressKey, type Cidr, cidrContains } from "../net/cidr.ts";
import { BUSY_RETRY_AFTER_S } from "../limits.ts";
import type { ConnInfo } from "../types.ts";
import { RateLimiter } from "./rate_limit.ts";

/** The limits; each is off when undefined or 0. */
export interface AdmissionOptions {
  /** Live sessions in all (`--max-connections`). */
  readonly maxConnections?: number;
  /** Live sessions per client address, IPv6 by /64 (`--max-connections-per-ip`). */
  readonly maxPerIp?: number;
  /** Live sessions per token (`--max-connections-per-token`). */
  readonly maxPerToken?: number;
  /** New sessions per client address per minute (`--rate-limit`). */
  readonly rateLimit?: number;
  /** Client addresses allowed in; others get 403 (`--allow-client`). */
  readonly allowClient?: readonly Cidr[];
}

/** Why an upgrade is refused: the status, its reason phrase, extra headers. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly headers?: Record<string, string>;
}

/**
 * A slot a session holds from before its 101 until it ends. Exactly one of
 * `cancel` (refused after all) or `release` (the session ended, or never
 * started) frees it; later calls do nothing.
 */
export interface Ticket {
  /** Takes a slot for the session's token: undefined, or a refusal (the ticket is then cancelled). */
  token(token: string | undefined): Refusal | undefined;
  /** Refused after all: frees the slot and gives back the rate-limit slot. */
  cancel(): void;
  /** The session ended (or the connection went before it opened). */
  release(): void;
}

/** The admission state of one server process. */
export interface Admission {
  /** True when the client's address may come in (`--allow-client`). */
  allowed(info: ConnInfo): boolean;
  /** Takes a slot for a new session, or says why not; undefined when nothing is counted. */
  enter(info: ConnInfo): Ticket | Refusal | undefined;
  /** Sessions holding a slot now. */
  readonly live: number;
}

/** The refusal for a client outside `--allow-client`. */
export const CLIENT_NOT_ALLOWED: Refusal = { status: 403, reason: "Client address not allowed" };

/**
 * The admission of one server, or undefined when no limit is set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createAdmission } from "./admission.ts";
 *
 * const admission = createAdmission({ maxPerIp: 1 })!;
 * const info = { id: 1, remote: { hostname: "10.0.0.1", port: 5000 }, tls: false };
 * const ticket = admission.enter(info);
 * assert.ok(ticket && "release" in ticket);
 * assert.deepEqual(admission.enter({ ...info, id: 2 }), {
 *   status: 429,
 *   reason: "Too many connections from this address",
 * });
 * ticket.release();
 * assert.equal(admission.live, 0);
 * ```
 */
export function createAdmission(options: AdmissionOptions): Admission | undefined {
  const { maxConnections = 0, maxPerIp = 0, maxPerToken = 0, rateLimit = 0, allowClient } = options;
  const counting = maxConnections > 0 || maxPerIp > 0 || maxPerToken > 0 || rateLimit > 0;
  if (!counting && !allowClient) return undefined;
  const rate = rateLimit > 0 ? new RateLimiter(rateLimit) : undefined;
  const perIp = new Map<string, number>();
  const perToken = new Map<string, number>();
  let live = 0;

  const down = (counts: Map<string, number>, key: string) => {
    const n = counts.get(key)! - 1;
    if (n > 0) counts.set(key, n);
    else counts.delete(key);
  };

  class Slot implements Ticket {
    #state: "held" | "done" = "held";
    #token: string | undefined;
    constructor(readonly key: string, readonly at: number) {}

    token(token: string | undefined): Refusal | undefined {
      if (maxPerToken <= 0 || token === undefined || this.#state !== "held") return undefined;
      const n = perToken.get(token) ?? 0;
      if (n >= maxPerToken) {
        this.cancel();
        return { status: 429, reason: "Too many connections for this token" };
      }
      perToken.set(token, n + 1);
      this.#token = token;
      return undefined;
    }
    cancel(): void {
      if (this.#state !== "held") return;
      this.release();
      rate?.untake(this.key, this.at);
    }
    release(): void {
      if (this.#state !== "held") return;
      this.#state = "done";
      live--;
      if (maxPerIp > 0) down(perIp, this.key);
      if (this.#token !== undefined) down(perToken, this.#token);
    }
  }

  return {
    allowed: (info) => !allowClient || cidrContains(allowClient, info.remote.hostname),
    enter(info) {
      if (!counting) return undefined;
      if (maxConnections > 0 && live >= maxConnections) {
        return {
          status: 503,
          reason: "Too many connections",
          headers: { "retry-after": String(BUSY_RETRY_AFTER_S) },
        };
      }
      const key = addressKey(info.remote.hostname);
      if (maxPerIp > 0 && (perIp.get(key) ?? 0) >= maxPerIp) {
        return { status: 429, reason: "Too many connections from this address" };
      }
      const now = performance.now();
      const wait = rate?.take(key, now) ?? 0;
      if (wait > 0) {
        return {
          status: 429,
          reason: "Too many new connections from this address",
          headers: { "retry-after": String(Math.max(1, Math.ceil(wait / 1000))) },
        };
      }
      live++;
      if (maxPerIp > 0) perIp.set(key, (perIp.get(key) ?? 0) + 1);
      return new Slot(key, now);
    },
    get live() {
      return live;
    },
  };
}

/**
 * The one deadline helper for client connections: a timer that destroys a
 * connection's sockets unless it is stopped first. The timer calls a shared
 * function, no closure, so a deadline costs one object and one timer.
 *
 * @module
 */
import type { Duplex } from "node:stream";
import { FIRST_BYTE_TIMEOUT_MS } from "../../lib/limits.ts";

/**
 * Destroys a connection's sockets `ms` after it is armed.
 *
 * @example
 * ```ts
 * import net from "node:net";
 * import { Deadline } from "./deadline.ts";
 *
 * const sock = new net.Socket();
 * const deadline = new Deadline(sock, 1000); // destroyed in a second...
 * deadline.stop(); // ...unless stopped
 * ```
 */
export class Deadline {
  /** The connection's sockets: the accepted one, and a TLS one over it. */
  readonly #sockets: Duplex[];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(sock: Duplex, ms: number) {
    this.#sockets = [sock];
    this.arm(ms);
  }

  /** Destroys `sock` too when the time is up (the TLS socket over the accepted one). */
  add(sock: Duplex): void {
    this.#sockets.push(sock);
  }

  /** Starts the time again: `ms` from now (0 or less: at once). */
  arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(Deadline.#expire, Math.max(ms, 0), this);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  static #expire(deadline: Deadline): void {
    for (const sock of deadline.#sockets) sock.destroy();
  }
}

/**
 * A connection's time limit until it is a WebSocket session: its first
 * bytes within {@link FIRST_BYTE_TIMEOUT_MS}, its 101 or a whole request head
 * within `ms` of the accept, and after each HTTP answer the next head within
 * `ms` again. 0 is no limit but the first bytes'.
 */
export class HandshakeDeadline extends Deadline {
  readonly #ms: number;
  readonly #start = Date.now();
  /** Requests being answered. */
  #answering = 0;

  constructor(sock: Duplex, ms: number) {
    super(sock, ms > 0 ? Math.min(ms, FIRST_BYTE_TIMEOUT_MS) : FIRST_BYTE_TIMEOUT_MS);
    this.#ms = ms;
  }

  /** The first bytes arrived: what is left of `ms` since the accept. */
  firstBytes(): void {
    if (this.#ms > 0) this.arm(this.#start + this.#ms - Date.now());
    else this.stop();
  }

  /** A request is being answered: no limit until the answer is written. */
  busy(): void {
    this.#answering++;
    this.stop();
  }

  /** An answer is written: the next request head has `ms`. */
  idle(): void {
    if (--this.#answering === 0 && this.#ms > 0) this.arm(this.#ms);
  }
}

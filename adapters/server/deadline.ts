/**
 * The one deadline helper for client connections: an alarm on the shared
 * deadline queue (lib/deadlines.ts) that destroys a connection's sockets
 * unless it is stopped first. A deadline costs one object and no runtime
 * timer of its own.
 *
 * @module
 */
import type { Duplex } from "node:stream";
import { Alarm, deadlines } from "../../lib/deadlines.ts";
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
export class Deadline extends Alarm {
  /** The connection's sockets: the accepted one, and a TLS one over it. */
  readonly #sockets: Duplex[];

  constructor(sock: Duplex, ms: number) {
    super();
    this.#sockets = [sock];
    this.arm(ms);
  }

  /** Destroys `sock` too when the time is up (the TLS socket over the accepted one). */
  add(sock: Duplex): void {
    this.#sockets.push(sock);
  }

  /** Starts the time again: `ms` from now (0 or less: at once). */
  arm(ms: number): void {
    deadlines.arm(this, ms);
  }

  /** The time is up. */
  ring(): void {
    for (const sock of this.#sockets) sock.destroy();
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
  /** Requests being answered. */
  #answering = 0;

  constructor(sock: Duplex, ms: number) {
    super(sock, ms > 0 ? Math.min(ms, FIRST_BYTE_TIMEOUT_MS) : FIRST_BYTE_TIMEOUT_MS);
    this.#ms = ms;
  }

  /** The first bytes arrived: what is left of `ms` since the accept. */
  firstBytes(): void {
    // Armed at the accept for the first bytes' limit, which is also all of
    // `ms` when that is shorter: only a longer `ms` moves the deadline.
    if (this.#ms <= 0) this.stop();
    else if (this.#ms > FIRST_BYTE_TIMEOUT_MS && this.armed) {
      deadlines.armAt(this, this.due + this.#ms - FIRST_BYTE_TIMEOUT_MS);
    }
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

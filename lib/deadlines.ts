/**
 * One runtime timer for every per-connection deadline (handshake, first
 * bytes, close frame, target connect, linger, heartbeat): arming, re-arming
 * and stopping one is a few pointer writes, not a runtime timer each.
 *
 * Deadlines live in FIFO lanes, one per band of delays. A deadline armed
 * later in a lane is due no more than the lane's width before any deadline
 * ahead of it, so the lane is nearly sorted: only its head needs watching,
 * and each band is narrow enough that this adds less than the granularity.
 * The one timer is armed for the earliest head, rounded up to the lane's
 * width so that deadlines due close together fire in one wake-up. Stopping
 * a deadline does not touch the timer: it may wake once for nothing and then
 * sleeps until the next head. The timer is unref'd: it never keeps the
 * process alive (each deadline guards a socket that does).
 *
 * @module
 */
import { DEADLINE_GRANULARITY_MS } from "./limits.ts";

/** The longest delay runtimes' timers take. */
const MAX_DELAY = 2 ** 31 - 1;

/** The nodes of one lane: deadlines with delays in [key, key + width). */
interface Lane {
  head: Alarm | undefined;
  tail: Alarm | undefined;
  readonly width: number;
}

/** The list operations, defined inside {@link Alarm} to reach its private links. */
let link: (alarm: Alarm, lane: Lane, due: number) => void;
let unlink: (alarm: Alarm) => void;
let nextOf: (alarm: Alarm) => Alarm | undefined;

/**
 * Something that rings at its deadline unless stopped first. Subclasses put
 * the action in {@link Alarm.ring}; the alarm object is also the queue's list
 * node, so arming allocates nothing.
 */
export abstract class Alarm {
  #prev: Alarm | undefined = undefined;
  #next: Alarm | undefined = undefined;
  #lane: Lane | undefined = undefined;
  #due = 0;

  /** What happens at the deadline. */
  abstract ring(): void;

  /** True while armed: neither stopped nor rung. */
  get armed(): boolean {
    return this.#lane !== undefined;
  }

  /** When it rings at the earliest, on {@link DeadlineQueue.now}'s clock (while armed). */
  get due(): number {
    return this.#due;
  }

  /** Disarms it; it does not ring. */
  stop(): void {
    if (this.#lane) unlink(this);
  }

  static {
    link = (alarm, lane, due) => {
      alarm.#lane = lane;
      alarm.#due = due;
      alarm.#prev = lane.tail;
      if (lane.tail) lane.tail.#next = alarm;
      else lane.head = alarm;
      lane.tail = alarm;
    };
    unlink = (alarm) => {
      const lane = alarm.#lane!;
      const prev = alarm.#prev;
      const next = alarm.#next;
      if (prev) prev.#next = next;
      else lane.head = next;
      if (next) next.#prev = prev;
      else lane.tail = prev;
      alarm.#lane = alarm.#prev = alarm.#next = undefined;
    };
    nextOf = (alarm) => alarm.#next;
  }
}

/** An {@link Alarm} that calls a function. */
class Callback extends Alarm {
  constructor(readonly fn: () => void) {
    super();
  }
  ring(): void {
    this.fn();
  }
}

/**
 * A set of deadlines on one runtime timer. A deadline rings no earlier than
 * its delay after it was armed, and later by less than `granularityMs` and
 * less than a twentieth of the delay (but up to 2 ms for delays under 40 ms),
 * plus whatever lateness the runtime's own timers have.
 *
 * @example
 * ```ts
 * import { DeadlineQueue } from "./deadlines.ts";
 *
 * const queue = new DeadlineQueue();
 * const alarm = queue.after(1000, () => console.log("late"));
 * alarm.stop(); // never rings
 * ```
 */
export class DeadlineQueue {
  /** Lanes by the lowest delay of their band. */
  readonly #lanes = new Map<number, Lane>();
  /** The widest band: a power of two, at most half the granularity. */
  readonly #maxWidth: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the timer rings; Infinity when none is set. */
  #at = Infinity;

  constructor(granularityMs: number = DEADLINE_GRANULARITY_MS) {
    this.#maxWidth = 2 ** Math.max(0, Math.floor(Math.log2(granularityMs / 2)));
  }

  /** The clock deadlines are measured on, in ms. */
  now(): number {
    return performance.now();
  }

  /** (Re)arms `alarm` to ring `ms` from now (0 or less: as soon as the timer can). */
  arm(alarm: Alarm, ms: number): void {
    const now = performance.now();
    this.#add(alarm, now + ms, ms, now);
  }

  /** (Re)arms `alarm` to ring at `due` on {@link DeadlineQueue.now}'s clock. */
  armAt(alarm: Alarm, due: number): void {
    const now = performance.now();
    this.#add(alarm, due, due - now, now);
  }

  /** Calls `fn` in `ms` unless the returned alarm is stopped first. */
  after(ms: number, fn: () => void): Alarm {
    const alarm = new Callback(fn);
    this.arm(alarm, ms);
    return alarm;
  }

  #add(alarm: Alarm, due: number, ms: number, now: number): void {
    alarm.stop();
    const delay = ms > 0 ? ms : 0;
    // Bands a twentieth of the delay wide at most (lane width plus rounding).
    const width = delay >= 40 * this.#maxWidth
      ? this.#maxWidth
      : 2 ** (31 - Math.clz32(Math.max(1, delay / 40)));
    const key = Math.floor(delay / width) * width;
    let lane = this.#lanes.get(key);
    if (!lane) this.#lanes.set(key, lane = { head: undefined, tail: undefined, width });
    const empty = lane.head === undefined;
    link(alarm, lane, due);
    if (empty) this.#schedule(Math.ceil(due / width) * width, now);
  }

  /** Sets the timer for `at` if it is not set for earlier. */
  #schedule(at: number, now: number): void {
    if (at >= this.#at) return;
    clearTimeout(this.#timer);
    this.#at = at;
    // Runtimes ring at once past a 32-bit delay: the timer then wakes early and re-arms.
    this.#timer = setTimeout(this.#ring, Math.min(Math.max(0, Math.ceil(at - now)), MAX_DELAY));
    // An unref'd timer on Node, Bun and Deno alike (all give a Timeout object).
    (this.#timer as unknown as { unref?: () => void }).unref?.();
  }

  /** Rings what is due, drops empty lanes and sets the timer for the next head. */
  readonly #ring = (): void => {
    this.#timer = undefined;
    this.#at = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [key, lane] of this.#lanes) {
      let head = lane.head;
      // Strictly before now: one re-armed with no delay while ringing waits for the next pass.
      while (head && head.due < now) {
        unlink(head);
        try {
          head.ring();
        } catch (error) {
          // As a throwing timer callback would; the other deadlines still ring.
          queueMicrotask(() => {
            throw error;
          });
        }
        head = lane.head;
      }
      if (head) next = Math.min(next, Math.ceil(head.due / lane.width) * lane.width);
      else this.#lanes.delete(key);
    }
    if (next < Infinity) this.#schedule(next, now);
  };

  /** How many alarms are armed (walks the lanes: for tests). */
  get size(): number {
    let n = 0;
    for (const lane of this.#lanes.values()) {
      for (let a = lane.head; a; a = nextOf(a)) n++;
    }
    return n;
  }
}

/** The process's deadline queue: every connection's deadlines share its timer. */
export const deadlines: DeadlineQueue = new DeadlineQueue();

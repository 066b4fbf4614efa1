/**
 * Text gathered and written once per event-loop turn: log lines to stderr
 * and to `--log-file`. Each write is a system call on the JavaScript thread;
 * in a flood of connections, one per line would cost more than formatting
 * the line. What is pending is written from the process's `exit` event, so
 * `process.exit()` loses nothing.
 *
 * @module
 */
import process from "node:process";
import { LOG_MAX_PENDING } from "../../lib/limits.ts";

/**
 * Hands queued text to `write` after the current turn, or at once past
 * {@link LOG_MAX_PENDING} characters (memory stays bounded in a flood).
 *
 * @example
 * ```ts
 * import { TextBatch } from "./text_batch.ts";
 *
 * const chunks: string[] = [];
 * const batch = new TextBatch((text) => chunks.push(text));
 * batch.push("a\n");
 * batch.push("b\n");
 * batch.flush();
 * batch.close();
 * if (chunks.join("|") !== "a\nb\n") throw new Error("not one write");
 * ```
 */
export class TextBatch {
  #pending: string[] = [];
  #size = 0;
  #scheduled = false;
  readonly #write: (text: string) => void;
  /** Writes what is queued now; a shared function, as the exit listener. */
  readonly flush = (): void => {
    this.#scheduled = false;
    if (this.#size === 0) return;
    const text = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join("");
    this.#pending = [];
    this.#size = 0;
    this.#write(text);
  };

  /** @param write called with the joined text; it must be synchronous. */
  constructor(write: (text: string) => void) {
    this.#write = write;
    process.on("exit", this.flush);
  }

  /** Queues `text` (whole lines, newlines included). */
  push(text: string): void {
    this.#pending.push(text);
    this.#size += text.length;
    if (this.#size > LOG_MAX_PENDING) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Flushes and stops listening for the process's exit. */
  close(): void {
    this.flush();
    process.off("exit", this.flush);
  }
}

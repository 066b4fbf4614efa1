/**
 * `--log-file`: lines appended to a file that stays open and is reopened on
 * demand (SIGHUP, for logrotate).
 *
 * Lines are gathered and written once per event-loop turn with one
 * synchronous `write` ({@link TextBatch}), and whatever is pending is
 * written from the process's `exit` event. Why not a write stream: on
 * `process.exit()` a stream's queued or in-flight writes are lost, and a
 * partly written chunk cannot be retried without risking duplicates; a
 * synchronous append per batch never loses a line and costs microseconds
 * (as upstream's `logging.FileHandler`, which writes synchronously per line).
 *
 * @module
 */
import fs from "node:fs";
import path from "node:path";
import { TextBatch } from "./text_batch.ts";

/** An open log file. */
export interface LogFile {
  /** The absolute path, resolved at open time (daemons change directory). */
  readonly path: string;
  /** Queues one line (without its newline). */
  write(line: string): void;
  /** Writes the queued lines now. */
  flush(): void;
  /** Reopens the path, leaving a renamed (rotated) file behind; throws if it cannot. */
  reopen(): void;
  /** Flushes and closes; later writes are dropped. */
  close(): void;
}

/**
 * Opens `file` for appending (created with mode 0644 if missing); throws if
 * it cannot.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { openLogFile } from "./log_file.ts";
 *
 * function logTo(path: string) {
 *   const file = openLogFile(path);
 *   process.on("SIGHUP", () => file.reopen());
 *   file.write("2026-11-21T10:37:36.123Z INFO started");
 * }
 * ```
 */
export function openLogFile(file: string): LogFile {
  const abs = path.resolve(file);
  let fd: number | undefined = fs.openSync(abs, "a", 0o644);
  const batch = new TextBatch((text) => {
    if (fd === undefined) return;
    const data = Buffer.from(text);
    try {
      for (let done = 0; done < data.length;) done += fs.writeSync(fd, data, done);
    } catch {
      // Disk full or file gone bad: drop these lines, logging never stops the proxy.
    }
  });

  return {
    path: abs,
    write(line) {
      if (fd !== undefined) batch.push(`${line}\n`);
    },
    flush: batch.flush,
    reopen() {
      if (fd === undefined) return;
      batch.flush();
      const next = fs.openSync(abs, "a", 0o644);
      fs.closeSync(fd);
      fd = next;
    },
    close() {
      batch.close();
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
    },
  };
}

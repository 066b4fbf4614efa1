/**
 * Writes session recordings to `FILE.N` (N = the connection id), through a
 * file stream so that recording never blocks the pump.
 *
 * @module
 */
import fs from "node:fs";
import { describeError } from "../../lib/errors.ts";
import { RECORD_FOOTER, RECORD_HEADER, recordFrame } from "../../lib/output/record.ts";
import type { Logger } from "../../lib/log.ts";
import type { Recorder } from "../../lib/bridge/sessions.ts";

/**
 * Returns a recorder factory for `--record=FILE`.
 *
 * @example
 * ```ts
 * import { fileRecorder } from "./record_file.ts";
 *
 * const record = fileRecorder("/tmp/session");
 * // record(1) starts the recording of connection 1 in /tmp/session.1
 * ```
 */
export function fileRecorder(base: string, log?: Logger): (id: number) => Recorder {
  // Never through a symlink: FILE may be in a directory others can write.
  const { O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW } = fs.constants;
  const flags = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW;
  return (id) => {
    // Numeric flags reach fs.open() as they are; the types only list strings.
    const out = fs.createWriteStream(`${base}.${id}`, { flags: flags as unknown as string });
    // A full disk or a symlink at the path must not take the proxy down; say so once.
    out.once(
      "error",
      (error) => log?.warn(`Cannot write record file ${base}.${id}: ${describeError(error)}`),
    );
    out.on("error", () => {});
    const started = performance.now();
    out.write(RECORD_HEADER);
    return {
      path: `${base}.${id}`,
      frame(fromClient, bytes) {
        out.write(recordFrame(fromClient, performance.now() - started, bytes));
      },
      close: () => new Promise<void>((resolve) => out.end(RECORD_FOOTER, () => resolve())),
    };
  };
}

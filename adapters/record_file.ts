/**
 * Writes session recordings to `FILE.N` (N = the connection id), through a
 * file stream so that recording never blocks the pump.
 *
 * @module
 */
import fs from "node:fs";
import { RECORD_FOOTER, RECORD_HEADER, recordFrame } from "../lib/record.ts";
import type { Recorder } from "../lib/proxy.ts";

/**
 * Returns a recorder factory for `--record=FILE`.
 *
 * @example
 * ```ts
 * const record = fileRecorder("/tmp/session");
 * const recorder = record(1); // writes /tmp/session.1
 * ```
 */
export function fileRecorder(base: string): (id: number) => Recorder {
  return (id) => {
    const out = fs.createWriteStream(`${base}.${id}`, { flags: "w" });
    out.on("error", () => {}); // a full disk must not take the proxy down
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

/**
 * SIGHUP: reopens `--log-file`, passes the signal on to `--workers` (each
 * reloads itself) and reloads the proxy (`Websockify.reload()`), then says
 * in one line what was reloaded, or in one error line why nothing was.
 *
 * @module
 */
import { describeError } from "../../lib/errors.ts";
import type { Websockify } from "../websockify.ts";
import type { Workers } from "../process/workers.ts";
import type { CliLogs } from "./logs.ts";
import type { Signals } from "./signals.ts";

/** What SIGHUP reaches besides the log file, set once each is running. */
export interface HupTargets {
  server?: Pick<Websockify, "reload">;
  workers?: Pick<Workers, "reload">;
}

/**
 * Handles SIGHUP from now on; installed before the server starts, since the
 * signal's default action would end the process. Reloads run one at a time.
 */
export function reloadOnHup(signals: Signals, logs: CliLogs): HupTargets {
  const targets: HupTargets = {};
  let queue: Promise<void> = Promise.resolve();
  signals.on("SIGHUP", () => {
    targets.workers?.reload();
    const reopened = logs.reopen();
    queue = queue.then(async () => {
      const done: string[] = reopened ? ["log file"] : [];
      try {
        done.push(...await targets.server?.reload() ?? []);
      } catch (error) {
        logs.log.error(`Reload failed, keeping the old settings: ${describeError(error)}`);
        return;
      }
      // A cluster primary has nothing of its own: its workers say what they reloaded.
      if (done.length > 0 || !targets.workers) {
        logs.log.info(`Reloaded: ${done.length > 0 ? done.join(", ") : "nothing to reload"}`);
      }
    });
  });
  return targets;
}

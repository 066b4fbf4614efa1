/**
 * systemd socket activation, the runtime-neutral half: whether this process
 * was handed listening sockets, as `sd_listen_fds(3)` decides. The CLI then
 * listens on the first one ({@link ACTIVATION_FD}) instead of binding.
 *
 * @module
 */

/** The first passed socket (`SD_LISTEN_FDS_START`). */
export const ACTIVATION_FD = 3;

/**
 * The variables systemd sets; unset for child processes, as
 * `sd_listen_fds(1)` does, since they describe this process's descriptors.
 */
export const ACTIVATION_ENV: readonly string[] = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/**
 * Whether `env` passes at least one socket to process `pid`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { socketActivated } from "./activation.ts";
 *
 * assert.equal(socketActivated({ LISTEN_FDS: "1", LISTEN_PID: "42" }, 42), true);
 * assert.equal(socketActivated({ LISTEN_FDS: "1", LISTEN_PID: "41" }, 42), false);
 * ```
 */
export function socketActivated(
  env: Readonly<Record<string, string | undefined>>,
  pid: number,
): boolean {
  const fds = env.LISTEN_FDS ?? "";
  return env.LISTEN_PID === String(pid) && /^\d+$/.test(fds) && Number(fds) >= 1;
}

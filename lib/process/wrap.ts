/**
 * Wrap mode (`websockify PORT -- PROGRAM ARGS`), the runtime-neutral half:
 * the environment that loads `rebind.so` into the program, the respawn
 * throttle and the log texts. The `REBIND_*`/`LD_PRELOAD` names live here
 * and in `rebind/rebind.c` only (the tests check that both agree).
 *
 * The program binds the proxy's port (OLD); `rebind.so` moves that bind to a
 * free loopback port (NEW), which the proxy forwards to. A dual-stack `::`
 * bind lands on IPv4 loopback, an IPv6-only one on `::1`
 * ({@link WRAP_HOSTS}); see `rebind/README.md`.
 *
 * @module
 */
import { RESPAWN_HISTORY, RESPAWN_WINDOW_MS } from "../limits.ts";
import { KEY_PASSWORD_ENV } from "../cli/args.ts";
import { ACTIVATION_ENV } from "./activation.ts";

/** The dynamic loader's preload list. */
export const LD_PRELOAD_ENV = "LD_PRELOAD";
/** The port the program asks for: the proxy's listen port. */
export const REBIND_OLD_PORT_ENV = "REBIND_OLD_PORT";
/** The loopback port the program gets instead. */
export const REBIND_NEW_PORT_ENV = "REBIND_NEW_PORT";

/**
 * Where the moved program listens, in the order the proxy tries them:
 * `rebind.so` puts IPv4 and dual-stack binds on 127.0.0.1, IPv6-only binds
 * on ::1.
 */
export const WRAP_HOSTS: readonly string[] = ["127.0.0.1", "::1"];

/** The one-line error when no C compiler is found. */
export const NO_COMPILER_TEXT =
  "Wrap mode needs a C compiler to build rebind.so: install gcc (apt-get install gcc)";

/**
 * For the proxy alone, never passed to the wrapped program: secrets, and
 * systemd's socket-activation variables (they name this process's fds).
 */
export const PROXY_ONLY_ENV: readonly string[] = [KEY_PASSWORD_ENV, ...ACTIVATION_ENV];

/**
 * The wrapped program's environment: the whole parent environment less
 * {@link PROXY_ONLY_ENV}, plus `rebind.so` prepended to `LD_PRELOAD` (as
 * upstream since 0.11) and the two ports. Child processes get the full set,
 * since Node and Bun replace rather than merge `env` (`docs/runtimes.md`,
 * "Child processes: env replaces or merges").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wrapEnv } from "./wrap.ts";
 *
 * assert.deepEqual(wrapEnv({ PATH: "/bin", LD_PRELOAD: "/x.so" }, "/c/rebind.so", 6080, 40123), {
 *   PATH: "/bin",
 *   LD_PRELOAD: "/c/rebind.so:/x.so",
 *   REBIND_OLD_PORT: "6080",
 *   REBIND_NEW_PORT: "40123",
 * });
 * ```
 */
export function wrapEnv(
  env: Readonly<Record<string, string | undefined>>,
  rebindPath: string,
  oldPort: number,
  newPort: number,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && !PROXY_ONLY_ENV.includes(name)) out[name] = value;
  }
  const old = env[LD_PRELOAD_ENV];
  out[LD_PRELOAD_ENV] = old ? `${rebindPath}:${old}` : rebindPath;
  out[REBIND_OLD_PORT_ENV] = String(oldPort);
  out[REBIND_NEW_PORT_ENV] = String(newPort);
  return out;
}

/**
 * How long to wait before the next respawn, given earlier start times (ms,
 * oldest first). Upstream's rule: wait until the mean of the last three
 * starts is 10 s ago. The first three starts go at once; a program that
 * keeps crashing then restarts about every 5 s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { respawnDelay } from "./wrap.ts";
 *
 * assert.equal(respawnDelay([], 0), 0);
 * assert.equal(respawnDelay([0, 500, 1000], 1000), 9500);
 * ```
 */
export function respawnDelay(starts: readonly number[], now: number): number {
  // Fewer starts than that: no wait (upstream's history starts as [0, 0, 0]).
  if (starts.length < RESPAWN_HISTORY) return 0;
  const recent = starts.slice(-RESPAWN_HISTORY);
  const mean = recent.reduce((a, b) => a + b, 0) / RESPAWN_HISTORY;
  return Math.max(0, Math.ceil(mean + RESPAWN_WINDOW_MS - now));
}

/**
 * The command as upstream shows it: arguments joined by spaces.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { commandText } from "./wrap.ts";
 *
 * assert.equal(commandText(["vncserver", ":1"]), "vncserver :1");
 * ```
 */
export function commandText(command: readonly string[]): string {
  return command.join(" ");
}

/** Upstream's log texts for wrap mode. */
export const WRAP_LOG = {
  starting: (command: readonly string[]): string => `Starting '${commandText(command)}'`,
  exited: (status: number): string => `Wrapped command exited (or daemon). Returned ${status}`,
  tooFast: "Command respawning too fast",
  /** The banner's target: `'cmd args' (port N)`. */
  target: (command: readonly string[], port: number): string =>
    `'${commandText(command)}' (port ${port})`,
} as const;

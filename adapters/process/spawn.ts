/**
 * Starting and stopping a program: `node:child_process` on all three
 * runtimes, stdio inherited, in its own process group so that a signal
 * reaches everything it started (`sh -c 'a & b'`) and a Ctrl-C on the
 * terminal reaches the proxy only, which then stops the program in order.
 *
 * @module
 */
import { spawn } from "node:child_process";
import os from "node:os";
import process from "node:process";

/** How a program ended: shell-style status (128 + signal when killed). */
export interface ProgramExit {
  readonly status: number;
  /** Why it did not start (not found, not executable); status 127 then. */
  readonly error?: Error;
}

/** A started program. */
export interface Program {
  /** Undefined when it could not be started. */
  readonly pid: number | undefined;
  /** Settles once, when the program has ended and been reaped. */
  readonly exited: Promise<ProgramExit>;
  /** True until `exited` settles. */
  readonly running: boolean;
  /** Signals the program's process group (the program alone if that fails). */
  signal(signal: "SIGTERM" | "SIGKILL"): void;
}

/**
 * Starts `command` with exactly `env` (pass the whole environment: Node and
 * Bun replace it, Deno merges; `docs/runtimes.md`, "Child processes: env
 * replaces or merges").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { spawnProgram } from "./spawn.ts";
 *
 * const program = spawnProgram(["sleep", "10"], { PATH: "/usr/bin:/bin" });
 * program.signal("SIGTERM");
 * assert.equal((await program.exited).status, 143);
 * ```
 */
export function spawnProgram(
  command: readonly string[],
  env: Record<string, string>,
): Program {
  const [file, ...args] = command;
  // detached: a new session and process group (setsid) on every runtime.
  const child = spawn(file!, args, { env, stdio: "inherit", detached: true });
  let running = true;
  const exited = new Promise<ProgramExit>((resolve) => {
    const done = (result: ProgramExit) => {
      running = false;
      resolve(result);
    };
    child.once("exit", (code, signal) => {
      done({ status: code ?? 128 + (os.constants.signals[signal!] ?? 0) });
    });
    // Without a pid it never started, and no "exit" follows.
    child.once("error", (error) => {
      if (child.pid === undefined) done({ status: 127, error });
    });
  });
  return {
    pid: child.pid,
    exited,
    get running() {
      return running;
    },
    signal(signal) {
      if (!running || child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        child.kill(signal);
      }
    },
  };
}

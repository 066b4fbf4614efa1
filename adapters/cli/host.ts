/**
 * What the `websockify` command takes from its process, as one object, so
 * that {@link runCli} in `run.ts` can run in a test with a host of its own.
 *
 * @module
 */
import process from "node:process";
import { USAGE } from "../../lib/cli/args.ts";
import { stderrBatch } from "../output/stderr.ts";

/** The signals the command handles. */
export type CliSignal = "SIGINT" | "SIGTERM" | "SIGHUP";

/** The process around a run of the command. */
export interface CliHost {
  /** Writes to standard output (`--help`, `--traffic`). */
  stdout(text: string): void;
  /** Writes to standard error (log lines and errors). */
  stderr(text: string): void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Relative paths on the command line are resolved against this. */
  readonly cwd: string;
  readonly pid: number;
  /**
   * Ends the process with `code` at once, whatever is still open; the
   * process host does not return. Not called after `--help`, which ends by
   * itself as the process empties.
   */
  exit(code: number): void;
  on(signal: CliSignal, handler: () => void): void;
  off(signal: CliSignal, handler: () => void): void;
}

/**
 * The host of `cli.ts`: this process. Stderr is written once per event-loop
 * turn, in order (`adapters/output/stderr.ts`): one system call per turn
 * rather than per log line.
 *
 * @example
 * ```ts
 * import { processHost } from "./host.ts";
 *
 * const host = processHost();
 * host.stdout("hello\n");
 * ```
 */
export function processHost(): CliHost {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => stderrBatch().push(text),
    env: process.env,
    cwd: process.cwd(),
    pid: process.pid,
    exit: (code) => process.exit(code),
    on: (signal, handler) => process.on(signal, handler),
    off: (signal, handler) => process.off(signal, handler),
  };
}

/** Ends a run with `status`; its message, if any, is already written. */
export class CliExit extends Error {
  /** The exit code. */
  readonly status: number;
  /** @param status the exit code */
  constructor(status: number) {
    super(`exit ${status}`);
    this.status = status;
  }
}

/** Writes one `websockify: error:` line and ends the run with `status`. */
export function fail(host: CliHost, message: string, status: number): never {
  host.stderr(`websockify: error: ${message}\n`);
  throw new CliExit(status);
}

/** A usage error: the usage lines, one error line and status 2, as optparse. */
export function usageError(host: CliHost, message: string): never {
  host.stderr(`${USAGE}\n\n`);
  return fail(host, message, 2);
}

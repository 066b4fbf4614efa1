/**
 * `-D`: the process re-runs itself detached (a new session, no terminal),
 * relays the child's start-up lines, and exits with 0 once the child is
 * listening, or with the child's status if it fails to start. Re-running
 * rather than forking, which no runtime offers (runtimes.md T18).
 *
 * @module
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import process from "node:process";

/** Set in the daemon child's environment. */
export const DAEMON_ENV = "WEBSOCKIFY_DAEMON_CHILD";
const READY = "websockify: daemon ready";

interface DenoSlice {
  execPath(): string;
  mainModule: string;
}

/** The command that runs this program again with `args`. */
export function selfCommand(args: string[]): [string, string[]] {
  const deno = (globalThis as unknown as { Deno?: DenoSlice }).Deno;
  if (deno) return [deno.execPath(), ["run", "-A", deno.mainModule, ...args]];
  return [process.execPath, [...process.execArgv, process.argv[1]!, ...args]];
}

/** True in the re-run child. */
export function isDaemonChild(): boolean {
  return process.env[DAEMON_ENV] === "1";
}

/**
 * Starts the detached child and never returns: exits 0 when it is ready.
 *
 * @example
 * ```ts
 * if (options.daemon && !isDaemonChild()) await daemonize(process.argv.slice(2));
 * ```
 */
export function daemonize(args: string[]): Promise<never> {
  const [cmd, argv] = selfCommand(args);
  const child = spawn(cmd, argv, {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, [DAEMON_ENV]: "1" },
  });
  return new Promise<never>(() => {
    let text = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      text += chunk;
      const ready = text.indexOf(READY);
      process.stderr.write(ready < 0 ? chunk : text.slice(0, ready));
      if (ready >= 0) {
        child.stderr!.destroy();
        child.unref();
        process.exit(0);
      }
      text = ready < 0 ? "" : text;
    });
    child.once("exit", (code) => process.exit(code ?? 1));
  });
}

/**
 * In the child, once listening: tells the parent, then detaches from its
 * stderr (upstream points stdio at /dev/null).
 */
export function daemonReady(): void {
  process.stderr.write(`${READY}\n`);
  process.stderr.on("error", () => {});
  process.stderr.write = () => true;
}

/**
 * Writes the pid to `file` and removes the file when the process exits.
 *
 * @example
 * ```ts
 * writePidFile("/run/websockify.pid");
 * ```
 */
export function writePidFile(file: string): void {
  fs.writeFileSync(file, `${process.pid}\n`);
  process.once("exit", () => fs.rmSync(file, { force: true }));
}

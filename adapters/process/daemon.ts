/**
 * `-D`: the process re-runs itself detached (a new session, no terminal),
 * relays the child's start-up lines, and exits with 0 once the child is
 * listening, or with the child's status if it fails to start. Re-running
 * rather than forking, which no runtime offers (`docs/runtimes.md`, "No
 * fork: the daemon runs itself again").
 *
 * @module
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import process from "node:process";
import { RUNTIME } from "../runtime.ts";
import { flushStderr } from "../output/stderr.ts";

/** Set in the daemon child's environment. */
export const DAEMON_ENV = "WEBSOCKIFY_DAEMON_CHILD";
const READY = "websockify: daemon ready";

interface DenoSlice {
  execPath(): string;
  mainModule: string;
}

/** The command that runs this program again with `args`. */
export function selfCommand(args: string[]): [string, string[]] {
  if (RUNTIME === "deno") {
    const deno = (globalThis as unknown as { Deno: DenoSlice }).Deno;
    return [deno.execPath(), ["run", "-A", deno.mainModule, ...args]];
  }
  return [process.execPath, [...process.execArgv, process.argv[1]!, ...args]];
}

/** True in the re-run child. */
export function isDaemonChild(): boolean {
  return process.env[DAEMON_ENV] === "1";
}

/**
 * Starts the detached child and relays its start-up lines to `stderr`;
 * resolves with 0 once the child is ready, or with its status if it ends
 * first. The caller then exits with that status at once.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { daemonize, isDaemonChild } from "./daemon.ts";
 *
 * async function start(options: { daemon: boolean }) {
 *   if (options.daemon && !isDaemonChild()) {
 *     process.exit(await daemonize(process.argv.slice(2), (text) => process.stderr.write(text)));
 *   }
 * }
 * ```
 */
export function daemonize(args: string[], stderr: (text: string) => void): Promise<number> {
  const [cmd, argv] = selfCommand(args);
  const child = spawn(cmd, argv, {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, [DAEMON_ENV]: "1" },
  });
  return new Promise<number>((resolve) => {
    let text = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      text += chunk;
      const ready = text.indexOf(READY);
      stderr(ready < 0 ? chunk : text.slice(0, ready));
      if (ready >= 0) {
        child.stderr!.destroy();
        child.unref();
        resolve(0);
      }
      text = ready < 0 ? "" : text;
    });
    child.once("exit", (code) => resolve(code ?? 1));
  });
}

/**
 * In the child, once listening: tells the parent, then detaches from its
 * stderr (upstream points stdio at /dev/null).
 */
export function daemonReady(): void {
  flushStderr();
  process.stderr.write(`${READY}\n`);
  process.stderr.on("error", () => {});
  process.stderr.write = () => true;
}

/**
 * Writes the pid to `file` and removes the file at exit if it is still
 * ours. Never through a symlink (O_NOFOLLOW, O_EXCL): the path may be in a
 * directory others can write. A file that names a running process is
 * refused, since another instance owns it; one that names a dead process is
 * stale and replaced. Throws an error that says why.
 *
 * @example
 * ```ts
 * import { writePidFile } from "./daemon.ts";
 *
 * const savePid = () => writePidFile("/run/websockify.pid");
 * ```
 */
export function writePidFile(file: string, pid: number = process.pid): void {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const create = () => fs.openSync(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
  let fd: number;
  try {
    fd = create();
  } catch (error) {
    if ((error as { code?: unknown }).code !== "EEXIST") throw error;
    removeStalePidFile(file, pid);
    fd = create(); // EEXIST again: another start won the race
  }
  let stat: fs.Stats;
  try {
    fs.writeSync(fd, `${pid}\n`);
    stat = fs.fstatSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  process.once("exit", () => {
    try {
      const now = fs.lstatSync(file);
      if (now.ino === stat.ino && now.dev === stat.dev) fs.rmSync(file);
    } catch { /* gone already */ }
  });
}

/** Removes a pid file left by a process that is gone; throws if it is not one. */
function removeStalePidFile(file: string, self: number): void {
  if (fs.lstatSync(file).isSymbolicLink()) throw new Error("is a symbolic link");
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  let text: string;
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error("exists and is not a regular file");
    text = fs.readFileSync(fd, "utf8").trim();
  } finally {
    fs.closeSync(fd);
  }
  if (!/^\d*$/.test(text)) throw new Error("exists and does not hold a process id");
  const pid = Number(text);
  if (pid > 0 && pid !== self && processAlive(pid)) {
    throw new Error(`process ${pid} is running`);
  }
  fs.rmSync(file);
}

/** True if a process with this pid exists (EPERM: it does, as another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code === "EPERM";
  }
}

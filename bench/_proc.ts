/**
 * Child processes of the benchmark: the TCP target and one proxy at a time.
 * Every child is tracked and killed on exit, also on errors and signals.
 * Children start through `sh -c 'ulimit -n …; exec …'` so that they can hold
 * thousands of sockets, and `exec` keeps the PID the one to read RSS from.
 *
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { timeout } from "./_client.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** A proxy implementation under test. */
export type ServerName = "deno" | "bun" | "node" | "relay" | "python";

/** The command that runs a proxy, before its arguments. */
export function proxyCommand(name: ServerName): string[] {
  const bin = (tool: string) => path.join(ROOT, "node_modules", ".bin", tool);
  if (name === "deno") return [bin("deno"), "run", "-A", "cli.ts"];
  if (name === "bun") return [bin("bun"), "cli.ts"];
  // What `npx websockify` runs: the built JavaScript (see buildDist).
  if (name === "node") return [process.execPath, "dist/cli.js"];
  if (name === "relay") return [process.execPath, "--import", "tsx", "bench/_relay.ts"];
  return ["websockify"];
}

/**
 * glibc settings for the client (this process) and the target, not for the
 * proxies: glibc returns freed heap to the kernel past 128 KiB by default,
 * and Node processes that churn 64 KiB socket buffers then page-fault every
 * page they read, which made the same client and target swing 3x between
 * runs. Proxies run with the environment users have.
 */
const STEADY = "glibc.malloc.trim_threshold=268435456";

/** Re-runs this script with the steady glibc settings unless it has them. */
export function steadyHarness(): void {
  if (process.env.GLIBC_TUNABLES === STEADY) return;
  const args = [...process.execArgv, ...process.argv.slice(1)];
  const result = spawnSync(process.execPath, args, {
    stdio: "inherit",
    env: { ...process.env, GLIBC_TUNABLES: STEADY },
  });
  process.exit(result.status ?? 1);
}

/** The environment for a proxy: the user's, without the harness settings. */
function proxyEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (env.GLIBC_TUNABLES === STEADY) delete env.GLIBC_TUNABLES;
  return env;
}

/** Builds `dist/` (what Node users run) so the Node proxy is the current code. */
export function buildDist(): void {
  const tsc = path.join(ROOT, "node_modules", ".bin", "tsc");
  const result = spawnSync(tsc, ["-p", "tsconfig.build.json"], { cwd: ROOT, stdio: "inherit" });
  if (result.status !== 0) throw new Error("building dist/ for the Node proxy failed");
}

/** True if `command` is on PATH. */
export function onPath(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

const children = new Set<ChildProcess>();

/** SIGKILLs every child still running and their descendants (forks). */
export function killAll(): void {
  for (const child of children) {
    if (child.pid === undefined) continue;
    for (const pid of [child.pid, ...descendants(child.pid)]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch { /* already gone */ }
    }
  }
  children.clear();
}

/** A running child. */
export interface Proc {
  readonly pid: number;
  /** False once it has exited. */
  alive(): boolean;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>;
}

/** Starts `cmd` with a raised open-files limit; killAll() ends it. */
function track(
  cmd: string[],
  fds: number,
  stdio: ("pipe" | "inherit" | "ignore" | number)[],
  env: NodeJS.ProcessEnv = process.env,
): Proc & {
  child: ChildProcess;
} {
  // Raise the soft limit to `fds` (the hard one too if allowed), else to the hard limit.
  const script = `ulimit -Sn ${fds} 2>/dev/null || ulimit -n ${fds} 2>/dev/null ||` +
    ` ulimit -Sn "$(ulimit -Hn)"; exec "$@"`;
  const child = spawn("sh", ["-c", script, "sh", ...cmd], { cwd: ROOT, stdio, env });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("exit", () => children.delete(child));
  return {
    child,
    pid: child.pid!,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const tree = descendants(child.pid!);
      child.kill("SIGTERM");
      await timeout(exited, 5000, () => "exit").catch(() => child.kill("SIGKILL"));
      for (const pid of tree) {
        try {
          process.kill(pid, "SIGKILL");
        } catch { /* already gone */ }
      }
    },
  };
}

/** Starts `_target.ts` under Node and resolves with its port. */
export async function startTarget(fds: number): Promise<Proc & { port: number }> {
  const script = path.join(ROOT, "bench", "_target.ts");
  const proc = track([process.execPath, "--import", "tsx", script], fds, [
    "pipe",
    "pipe",
    "inherit",
  ]);
  const line = new Promise<string>((resolve, reject) => {
    let out = "";
    proc.child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (out.includes("\n")) resolve(out.split("\n")[0]!);
    });
    proc.child.once("exit", (code) => reject(new Error(`Target exited with ${code}`)));
  });
  const { port } = JSON.parse(await timeout(line, 20_000, () => "target start")) as {
    port: number;
  };
  return { ...proc, port };
}

/** Starts a proxy to `targetPort`, logging to `logFile`; resolves with its port. */
export async function startProxy(
  name: ServerName,
  targetPort: number,
  logFile: string,
  fds: number,
): Promise<Proc & { port: number }> {
  // Upstream logs the port it was given, not the bound one: pick one for it.
  const listen = name === "python" ? `127.0.0.1:${await freePort()}` : "127.0.0.1:0";
  return startCommand(proxyCommand(name), listen, targetPort, logFile, fds);
}

/**
 * Starts `cmd LISTEN 127.0.0.1:TARGET`, logging to `logFile`, and resolves
 * with the port from its `Listen on` banner.
 */
export async function startCommand(
  cmd: string[],
  listen: string,
  targetPort: number,
  logFile: string,
  fds: number,
): Promise<Proc & { port: number }> {
  const name = cmd.join(" ");
  const log = fs.openSync(logFile, "w");
  const proc = track(
    [...cmd, listen, `127.0.0.1:${targetPort}`],
    fds,
    ["ignore", log, log],
    proxyEnv(),
  );
  fs.closeSync(log);
  const end = Date.now() + 60_000;
  for (;;) {
    const match = /Listen on \S+:(\d+)/.exec(fs.readFileSync(logFile, "utf8"));
    if (match) return { ...proc, port: Number(match[1]) };
    if (proc.child.exitCode !== null) throw new Error(`${name} exited; see ${logFile}`);
    if (Date.now() > end) throw new Error(`${name} did not start in 60 s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The PIDs below `pid` (upstream forks one child per connection). */
export function descendants(pid: number): number[] {
  const kids = new Map<number, number[]>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(entry)]);
    } catch { /* exited meanwhile */ }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = kids.get(queue.pop()!) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

function fieldKiB(file: string, field: string): number {
  try {
    const text = fs.readFileSync(file, "utf8");
    return Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Memory in KiB: VmRSS of `pid`; with `tree`, the PSS sum over `pid` and its
 * descendants instead, since forked children share most pages and RSS would
 * count them once per child.
 */
export function memKiB(pid: number, tree = false): number {
  if (!tree) return fieldKiB(`/proc/${pid}/status`, "VmRSS");
  const pids = [pid, ...descendants(pid)];
  return pids.reduce((sum, p) => sum + fieldKiB(`/proc/${p}/smaps_rollup`, "Pss"), 0);
}

/** VmHWM in KiB: the peak RSS of `pid` alone since start or {@link resetPeak}. */
export function peakKiB(pid: number): number {
  return fieldKiB(`/proc/${pid}/status`, "VmHWM");
}

/** Resets VmHWM to the current RSS (Linux `clear_refs` 5); false if not allowed. */
export function resetPeak(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** The soft limit on open files of `pid` (or this process). */
export function fdLimit(pid: number | "self" = "self"): number {
  const text = fs.readFileSync(`/proc/${pid}/limits`, "utf8");
  const value = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  return value === "unlimited" ? Infinity : Number(value);
}

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
export type ServerName = "deno" | "bun" | "node" | "relay" | "python" | "lighttpd";

/** The peers a user would pick instead: their failures are not this project's errors. */
export const PEERS: readonly ServerName[] = ["python", "lighttpd"];

/** The command that runs a proxy, before its arguments. */
export function proxyCommand(name: ServerName): string[] {
  const bin = (tool: string) => path.join(ROOT, "node_modules", ".bin", tool);
  if (name === "deno") return [bin("deno"), "run", "-A", "cli.ts"];
  if (name === "bun") return [bin("bun"), "cli.ts"];
  // What `npx websockify` runs: the built JavaScript (see buildDist).
  if (name === "node") return [process.execPath, "dist/cli.js"];
  if (name === "relay") return [process.execPath, "--import", "tsx", "bench/_relay.ts"];
  // Debian installs it in /usr/sbin, which is not on every user's PATH.
  if (name === "lighttpd") return [onPath("lighttpd") ? "lighttpd" : "/usr/sbin/lighttpd"];
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

/** Which CPUs each side runs on; `note` says why nothing is pinned. */
export interface Pinning {
  proxy?: string;
  harness?: string;
  note: string;
}

const PIN_ENV = "WEBSOCKIFY_BENCH_PIN";
/** The CPUs proxies start on (via `taskset`), once {@link steadyHarness} pinned. */
let proxyCpus: string | undefined;

/** The CPUs this process may run on, e.g. [0, 1, 2, 3]. */
function allowedCpus(): number[] {
  const text = fs.readFileSync("/proc/self/status", "utf8");
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(text)?.[1] ?? "";
  return list.split(",").filter(Boolean).flatMap((range) => {
    const [a, b = a] = range.split("-").map(Number) as [number, number?];
    return Array.from({ length: b! - a + 1 }, (_, i) => a + i);
  });
}

/** The proxy alone on the last allowed CPU, the runner and target on the others. */
function planPinning(pin: boolean): Pinning {
  if (!pin) return { note: "off (--no-pin)" };
  if (!onPath("taskset")) return { note: "off (`taskset` is not on PATH)" };
  const cpus = allowedCpus();
  if (cpus.length < 2) return { note: `off (only CPU ${cpus.join("")} is allowed)` };
  const proxy = String(cpus.at(-1));
  const harness = cpus.slice(0, -1).join(",");
  return {
    proxy,
    harness,
    note: `proxy alone on CPU ${proxy}; client (runner) and target on CPU ${harness} (taskset)`,
  };
}

/**
 * Re-runs this script with the steady glibc settings unless it has them and,
 * with `pin`, under `taskset` on the harness CPUs; proxies started later run
 * on the CPU left to them. Returns the pinning in effect.
 */
export function steadyHarness(pin = false): Pinning {
  const planned = process.env[PIN_ENV];
  if (process.env.GLIBC_TUNABLES === STEADY && planned) {
    const pinning = JSON.parse(planned) as Pinning;
    proxyCpus = pinning.proxy;
    return pinning;
  }
  const pinning = planPinning(pin);
  const args = [...process.execArgv, ...process.argv.slice(1)];
  const cmd = pinning.harness
    ? ["taskset", "-c", pinning.harness, process.execPath, ...args]
    : [process.execPath, ...args];
  const result = spawnSync(cmd[0]!, cmd.slice(1), {
    stdio: "inherit",
    env: { ...process.env, GLIBC_TUNABLES: STEADY, [PIN_ENV]: JSON.stringify(pinning) },
  });
  process.exit(result.status ?? 1);
}

/** The environment for a proxy: the user's, without the harness settings. */
function proxyEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (env.GLIBC_TUNABLES === STEADY) delete env.GLIBC_TUNABLES;
  delete env[PIN_ENV];
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
  if (name === "lighttpd") return startLighttpd(targetPort, logFile, fds);
  if (name !== "python") {
    return startCommand(proxyCommand(name), "127.0.0.1:0", targetPort, logFile, fds);
  }
  // Upstream logs the port it was given, not the bound one, and before it
  // binds: pick a port for it, then wait until it accepts.
  const proxy = await startCommand(
    proxyCommand(name),
    `127.0.0.1:${await freePort()}`,
    targetPort,
    logFile,
    fds,
  );
  await untilAccepting(proxy.port, proxy);
  return proxy;
}

/** Resolves once a TCP connect to `port` succeeds (closing it at once); 60 s at most. */
async function untilAccepting(port: number, proc: Proc): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host: "127.0.0.1", port }, () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    if (!proc.alive()) throw new Error(`the proxy on port ${port} exited`);
    if (Date.now() > end) throw new Error(`nothing accepts on port ${port} after 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
  const proc = spawnLogged([...cmd, listen, `127.0.0.1:${targetPort}`], logFile, fds);
  const banner = await waitForLine(proc, logFile, /Listen on \S+:(\d+)/, cmd.join(" "));
  return { ...proc, port: Number(banner[1]) };
}

/** Starts a proxy command (on the proxy CPU when pinned) with its output in `logFile`. */
function spawnLogged(cmd: string[], logFile: string, fds: number): ReturnType<typeof track> {
  const log = fs.openSync(logFile, "w");
  const pinned = proxyCpus === undefined ? cmd : ["taskset", "-c", proxyCpus, ...cmd];
  const proc = track(pinned, fds, ["ignore", log, log], proxyEnv());
  fs.closeSync(log);
  return proc;
}

/** Polls `file` for `pattern` for up to 60 s while `proc` runs. */
async function waitForLine(
  proc: ReturnType<typeof track>,
  file: string,
  pattern: RegExp,
  name: string,
): Promise<RegExpExecArray> {
  const end = Date.now() + 60_000;
  for (;;) {
    const match = fs.existsSync(file) ? pattern.exec(fs.readFileSync(file, "utf8")) : null;
    if (match) return match;
    if (proc.child.exitCode !== null) throw new Error(`${name} exited; see ${file}`);
    if (Date.now() > end) throw new Error(`${name} did not start in 60 s; see ${file}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * lighttpd with mod_wstunnel as the C peer, in the foreground on a free port.
 * Its files go next to `logFile`. Idle limits are raised so that long runs
 * and held connections are never cut; descriptors as many as the limit
 * allows (lighttpd stops accepting at a high watermark below `server.max-fds`).
 */
async function startLighttpd(
  targetPort: number,
  logFile: string,
  fds: number,
): Promise<Proc & { port: number }> {
  const port = await freePort();
  const dir = path.dirname(logFile);
  const base = logFile.replace(/\.log$/, "");
  const maxFds = Math.min(fds, hardFdLimit());
  const conf = [
    `server.modules = ("mod_wstunnel")`,
    `server.document-root = ${JSON.stringify(dir)}`,
    `server.bind = "127.0.0.1"`,
    `server.port = ${port}`,
    `server.errorlog = ${JSON.stringify(`${base}.error.log`)}`,
    `server.max-fds = ${maxFds}`,
    `server.max-connections = ${Math.floor(maxFds / 2) - 16}`,
    `server.max-read-idle = 3600`,
    `server.max-write-idle = 3600`,
    `wstunnel.server = ("" => (("host" => "127.0.0.1", "port" => ${targetPort})))`,
    `wstunnel.frame-type = "binary"`,
    "",
  ].join("\n");
  const confFile = `${base}.conf`;
  fs.writeFileSync(confFile, conf);
  // A second start with the same file names must not see the first one's banner.
  fs.rmSync(`${base}.error.log`, { force: true });
  const proc = spawnLogged(["lighttpd", "-D", "-f", confFile], logFile, fds);
  await waitForLine(proc, `${base}.error.log`, /server started/, "lighttpd");
  return { ...proc, port };
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

/** The hard limit on open files of this process. */
export function hardFdLimit(): number {
  const text = fs.readFileSync("/proc/self/limits", "utf8");
  const value = /^Max open files\s+\S+\s+(\S+)/m.exec(text)?.[1];
  return value === "unlimited" ? Infinity : Number(value);
}

/** CPU seconds and minor page faults of one process, from `/proc/PID/stat`. */
export interface CpuTimes {
  user: number;
  system: number;
  /** user + system of its children that have exited and been waited for */
  children: number;
  faults: number;
}

const USER_HZ = 100; // clock ticks per second in /proc/PID/stat on Linux

/** {@link CpuTimes} of `pid`; zeros once it is gone. */
export function cpuTimes(pid: number | "self"): CpuTimes {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    return {
      user: f[11]! / USER_HZ,
      system: f[12]! / USER_HZ,
      children: (f[13]! + f[14]!) / USER_HZ,
      faults: f[7]!,
    };
  } catch {
    return { user: 0, system: 0, children: 0, faults: 0 };
  }
}

/**
 * User + system CPU seconds spent by `pid` and, with `tree`, by every process
 * it forked: those still running (or not yet waited for) are read directly,
 * those reaped are in `pid`'s children's times.
 */
export function cpuSeconds(pid: number, tree = false): number {
  const own = (p: number) => {
    const t = cpuTimes(p);
    return t.user + t.system + (tree ? t.children : 0);
  };
  return tree ? [pid, ...descendants(pid)].reduce((sum, p) => sum + own(p), 0) : own(pid);
}

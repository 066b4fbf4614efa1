/**
 * Wrap mode: the pure env and throttle rules, `rebind.so` moving real binds
 * (IPv4, dual-stack `::`, IPv6-only) under `LD_PRELOAD`, and the CLI running
 * a program with each `--wrap-mode`, stopping it on SIGTERM and leaving no
 * process behind. The wrapped program is always plain `node` running
 * `tests/fixtures/wrap_server.mjs`. Linux only; skipped without `cc`.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { rebindLibrary } from "../adapters/process/rebind.ts";
import {
  LD_PRELOAD_ENV,
  NO_COMPILER_TEXT,
  REBIND_NEW_PORT_ENV,
  REBIND_OLD_PORT_ENV,
  respawnDelay,
  WRAP_LOG,
  wrapEnv,
} from "../lib/process/wrap.ts";
import {
  type CliProcess,
  closed,
  freePort,
  openClient,
  pattern,
  receive,
  ROOT,
  sleep,
  spawnCli,
  waitFor,
  within,
} from "./_harness.ts";
import { after, before, capability, describe, needs, NO_IPV6, type SkipIf, test } from "./_skip.ts";

const FIXTURE = path.join(ROOT, "tests", "fixtures", "wrap_server.mjs");

const LINUX = process.platform === "linux"
  ? false
  : capability("wrap mode needs Linux (LD_PRELOAD)");

/** Whether the C compiler that builds rebind.so runs. */
function hasCompiler(): boolean {
  try {
    execFileSync(process.env.CC?.trim().split(/\s+/)[0] || "cc", ["--version"], {
      stdio: "ignore",
    });
    return true;
  } catch {
    return false;
  }
}
/** Why the native parts skip, or false. */
const SKIP = LINUX ||
  needs("a C compiler (cc) to build rebind.so", hasCompiler(), "apt-get install gcc libc6-dev");

// A fresh build cache per run, so the suite also covers the first build.
const CACHE = fs.mkdtempSync(path.join(os.tmpdir(), "websockify-wrap-"));
const children: ChildProcess[] = [];
const proxies: CliProcess[] = [];

after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await Promise.all(proxies.map((p) => p.kill("SIGKILL")));
  fs.rmSync(CACHE, { recursive: true, force: true });
});

/** What the fixture prints once listening. */
interface Listening {
  pid: number;
  port: number;
  address: string;
}

const LISTENING = /wrapped pid=(\d+) port=(\d+) address=(\S+)/g;

/** Every `wrapped …` line in `text`, in order. */
function listening(text: string): Listening[] {
  return [...text.matchAll(LISTENING)].map((m) => ({
    pid: Number(m[1]),
    port: Number(m[2]),
    address: m[3]!,
  }));
}

/** Runs the fixture under `env`; resolves once it listens. */
async function runFixture(args: string[], env: Record<string, string>): Promise<Listening> {
  const child = spawn("node", [FIXTURE, ...args], { env, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  await waitFor(() => listening(out).length > 0 || child.exitCode !== null, 10000, "fixture");
  assert.ok(listening(out)[0], `fixture exited: ${out}`);
  return listening(out)[0]!;
}

/** Sends bytes over TCP and expects them back. */
async function tcpEcho(host: string, port: number): Promise<void> {
  const sock = net.connect({ host, port });
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve).once("error", reject);
    });
    sock.write("ping");
    const reply = new Promise<Buffer>((resolve) => sock.once("data", resolve));
    assert.equal((await within(5000, reply, "TCP echo")).toString(), "ping");
  } finally {
    sock.destroy();
  }
}

/** Rejects unless connecting to `host:port` is refused. */
function assertRefused(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    sock.once("connect", () => {
      sock.destroy();
      reject(new Error(`${host}:${port} accepted a connection`));
    });
    sock.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED") resolve();
      else reject(error);
    });
  });
}

/** True while `pid` exists (a zombie counts). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    assert.equal((error as NodeJS.ErrnoException).code, "ESRCH");
    return false;
  }
}

/** The processes whose parent is `pid`, with their state letter (Z: zombie). */
function childrenOf(pid: number): { pid: number; state: string }[] {
  const out = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(ppid) === pid) out.push({ pid: Number(name), state: state! });
  }
  return out;
}

describe("lib/process/wrap.ts", () => {
  test("wrapEnv() keeps the environment and prepends rebind.so to LD_PRELOAD", () => {
    assert.deepEqual(wrapEnv({ PATH: "/bin", UNSET: undefined }, "/c/r.so", 6080, 40000), {
      PATH: "/bin",
      LD_PRELOAD: "/c/r.so",
      REBIND_OLD_PORT: "6080",
      REBIND_NEW_PORT: "40000",
    });
    const env = wrapEnv({ LD_PRELOAD: "/x.so" }, "/c/r.so", 1, 2);
    assert.equal(env[LD_PRELOAD_ENV], "/c/r.so:/x.so");
  });

  test("wrapEnv() drops WEBSOCKIFY_KEY_PASSWORD, a secret for the proxy only", () => {
    const env = wrapEnv({ PATH: "/bin", WEBSOCKIFY_KEY_PASSWORD: "sesame" }, "/c/r.so", 1, 2);
    assert.equal(env.PATH, "/bin");
    assert.ok(!("WEBSOCKIFY_KEY_PASSWORD" in env));
  });

  test("wrapEnv() drops systemd's LISTEN_* variables, which name the proxy's fds", () => {
    const env = wrapEnv(
      { PATH: "/bin", LISTEN_FDS: "1", LISTEN_PID: "42", LISTEN_FDNAMES: "websockify.socket" },
      "/c/r.so",
      1,
      2,
    );
    assert.equal(env.PATH, "/bin");
    for (const name of ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]) assert.ok(!(name in env));
  });

  test("respawnDelay() allows three quick starts, then about one per 5 s", () => {
    assert.equal(respawnDelay([], 0), 0);
    assert.equal(respawnDelay([0, 500], 1000), 0);
    assert.equal(respawnDelay([0, 500, 1000], 1000), 9500);
    assert.equal(respawnDelay([0, 500, 1000], 20000), 0);
    // Crashing at once every time, starts settle 5 s apart (upstream's rule).
    const starts = [0, 0, 0];
    for (let i = 0; i < 20; i++) starts.push(starts.at(-1)! + respawnDelay(starts, starts.at(-1)!));
    assert.ok(Math.abs(starts.at(-1)! - starts.at(-2)! - 5000) < 10, String(starts.slice(-3)));
  });

  test("rebind.c reads the environment names lib/process/wrap.ts sets", () => {
    const source = fs.readFileSync(path.join(ROOT, "rebind", "rebind.c"), "utf8");
    assert.ok(source.includes(`"${REBIND_OLD_PORT_ENV}"`));
    assert.ok(source.includes(`"${REBIND_NEW_PORT_ENV}"`));
  });
});

describe("rebind.so", { skip: SKIP, timeout: 60000 }, () => {
  let so = "";
  const env = (oldPort: number, newPort: number) =>
    wrapEnv(process.env, so, oldPort, newPort) as Record<string, string>;

  before(async () => {
    so = await rebindLibrary({ ...process.env, XDG_CACHE_HOME: CACHE });
  });

  test("rebindLibrary() builds once into the cache directory", async () => {
    assert.match(so, /websockify[/\\]rebind-[0-9a-f]{16}\.so$/);
    assert.ok(so.startsWith(CACHE));
    assert.equal(await rebindLibrary({ ...process.env, XDG_CACHE_HOME: CACHE }), so);
  });

  const moves: [string, string[], string, SkipIf][] = [
    ["0.0.0.0", [], "127.0.0.1", false],
    ["127.0.0.1", [], "127.0.0.1", false],
    ["::", [], "::ffff:127.0.0.1", NO_IPV6],
    ["::", ["--ipv6-only"], "::1", NO_IPV6],
    ["::1", [], "::1", NO_IPV6],
  ];
  for (const [host, flags, moved, skip] of moves) {
    const what = `${host}${flags.length ? " (IPv6 only)" : ""}`;
    test(`a bind to ${what} on OLD moves to ${moved} on NEW`, { skip }, async () => {
      const [oldPort, newPort] = [await freePort(), await freePort()];
      const got = await runFixture([String(oldPort), host, ...flags], env(oldPort, newPort));
      assert.deepEqual([got.address, got.port], [moved, newPort]);
      const connectTo = moved === "::1" ? "::1" : "127.0.0.1";
      await tcpEcho(connectTo, newPort);
      await assertRefused(connectTo, oldPort);
      process.kill(got.pid, "SIGTERM");
    });
  }

  test("a bind to another port is untouched", async () => {
    const [oldPort, newPort, other] = [await freePort(), await freePort(), await freePort()];
    const got = await runFixture([String(other), "0.0.0.0"], env(oldPort, newPort));
    assert.deepEqual([got.address, got.port], ["0.0.0.0", other]);
    process.kill(got.pid, "SIGTERM");
  });
});

describe("websockify -- PROGRAM", { skip: SKIP, timeout: 60000 }, () => {
  /** Starts the proxy on a free port wrapping the fixture; resolves once it listens. */
  async function wrapped(flags: string[], fixtureArgs: string[]) {
    const port = await freePort();
    const args = [...flags, `127.0.0.1:${port}`, "--", "node", FIXTURE, String(port)];
    const proc = spawnCli([...args, ...fixtureArgs], { XDG_CACHE_HOME: CACHE });
    proxies.push(proc);
    await proc.port();
    return { proc, port };
  }

  /** Waits for the `n`-th `wrapped …` line on the proxy's stdout. */
  async function nthStart(proc: CliProcess, n = 1): Promise<Listening> {
    await waitFor(() => listening(proc.stdout).length >= n, 10000, `start ${n}: ${proc.stderr}`);
    return listening(proc.stdout)[n - 1]!;
  }

  /** A WebSocket echo through the proxy. */
  async function wsEcho(port: number): Promise<void> {
    const ws = await openClient(port, "binary");
    const data = pattern(100_000);
    const got = receive(ws, data.length);
    ws.send(data);
    assert.deepEqual(await within(10000, got, "echo"), data);
    ws.close();
    await closed(ws);
  }

  const variants: [string, string[], SkipIf][] = [
    ["0.0.0.0", ["0.0.0.0"], false],
    ["::", ["::"], NO_IPV6],
    ["::, IPv6 only (reached on ::1)", ["::", "--ipv6-only"], NO_IPV6],
  ];
  for (const [name, args, skip] of variants) {
    test(`a program binding ${name} is reached through the proxy`, { skip }, async () => {
      const { proc, port } = await wrapped([], args);
      const started = await nthStart(proc);
      assert.match(proc.stderr, /proxying from 127\.0\.0\.1:\d+ to 'node .*' \(port \d+\)/);
      assert.ok(proc.stderr.includes(WRAP_LOG.starting(["node", FIXTURE, String(port), ...args])));
      assert.notEqual(started.port, port);
      await wsEcho(port);
      assert.equal(await within(10000, proc.kill("SIGTERM"), "proxy exit"), 0, proc.stderr);
    });
  }

  test("the program's port is below the kernel's ephemeral range", async () => {
    // An outgoing connection could otherwise take it before the program binds it.
    const low = Number(
      fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
    );
    const { proc } = await wrapped([], ["0.0.0.0"]);
    const started = await nthStart(proc);
    assert.ok(started.port < low, `port ${started.port}, ephemeral from ${low}`);
    assert.equal(await within(10000, proc.kill("SIGTERM"), "proxy exit"), 0, proc.stderr);
  });

  test("--wrap-mode=exit (default) exits with the program's status", async () => {
    const { proc } = await wrapped([], ["0.0.0.0", "--exit=3"]);
    assert.equal(await within(10000, proc.exited, "proxy exit"), 3, proc.stderr);
    assert.ok(proc.stderr.includes(WRAP_LOG.exited(3)), proc.stderr);
  });

  test("the program does not see WEBSOCKIFY_KEY_PASSWORD", async () => {
    const port = await freePort();
    const args = [`127.0.0.1:${port}`, "--", "node", FIXTURE, String(port), "0.0.0.0"];
    const proc = spawnCli([...args, "--env", "--exit=0"], {
      XDG_CACHE_HOME: CACHE,
      WEBSOCKIFY_KEY_PASSWORD: "sesame",
      WSFY_TEST_VISIBLE: "1",
    });
    proxies.push(proc);
    assert.equal(await within(10000, proc.exited, "proxy exit"), 0, proc.stderr);
    const names = /^env (.*)$/m.exec(proc.stdout)?.[1]?.split(",") ?? [];
    assert.ok(names.includes("WSFY_TEST_VISIBLE"), proc.stdout);
    assert.ok(names.includes(REBIND_NEW_PORT_ENV));
    assert.ok(!names.includes("WEBSOCKIFY_KEY_PASSWORD"), "the secret reached the program");
  });

  test("a program that cannot start ends the proxy with status 127", async () => {
    const port = await freePort();
    const proc = spawnCli([`127.0.0.1:${port}`, "--", "no-such-program-here"], {
      XDG_CACHE_HOME: CACHE,
    });
    proxies.push(proc);
    assert.equal(await within(10000, proc.exited, "proxy exit"), 127, proc.stderr);
    assert.match(proc.stderr, /Cannot start 'no-such-program-here': command not found/);
  });

  test("--wrap-mode=ignore keeps serving after the program exits, and reaps it", async () => {
    const { proc, port } = await wrapped(["--wrap-mode=ignore"], ["0.0.0.0", "--exit=0"]);
    const { pid } = await nthStart(proc);
    await waitFor(() => proc.stderr.includes(WRAP_LOG.exited(0)), 10000, "exit logged");
    await sleep(300);
    assert.equal(proc.child.exitCode, null, proc.stderr);
    // Still accepting; the target is gone, so the session ends with 1011.
    const ws = await openClient(port, "binary");
    assert.equal((await within(5000, closed(ws), "close")).code, 1011);
    assert.equal(alive(pid), false, "program not reaped");
    assert.deepEqual(childrenOf(proc.child.pid!).filter((c) => c.state === "Z"), []);
    assert.equal(await within(10000, proc.kill("SIGTERM"), "proxy exit"), 0, proc.stderr);
  });

  test("--wrap-mode=respawn restarts a crashing program and serves again", async () => {
    const count = path.join(CACHE, `count-${Date.now()}`);
    const args = ["0.0.0.0", "--crash=2", `--count=${count}`];
    const { proc, port } = await wrapped(["--wrap-mode=respawn"], args);
    await nthStart(proc);
    assert.equal(fs.readFileSync(count, "utf8").trim().split("\n").length, 3);
    await wsEcho(port);
    assert.equal(await within(10000, proc.kill("SIGTERM"), "proxy exit"), 0, proc.stderr);
  });

  test("--wrap-mode=respawn throttles a program that always crashes", async () => {
    const count = path.join(CACHE, `count-${Date.now()}`);
    const args = ["0.0.0.0", "--crash=1000", `--count=${count}`];
    const { proc } = await wrapped(["--wrap-mode=respawn"], args);
    await waitFor(() => proc.stderr.includes(WRAP_LOG.tooFast), 10000, "throttle warning");
    await sleep(1500);
    // Three quick starts, then the next one waits about 10 s.
    assert.equal(fs.readFileSync(count, "utf8").trim().split("\n").length, 3);
    assert.equal(proc.stderr.match(/Starting 'node /g)?.length, 3, proc.stderr);
    assert.equal(await within(10000, proc.kill("SIGTERM"), "proxy exit"), 0, proc.stderr);
  });

  for (const ignoring of [false, true]) {
    const how = ignoring ? "a program ignoring SIGTERM gets SIGKILL" : "the program gets SIGTERM";
    test(`SIGTERM stops the proxy and ${how}; nothing is left`, async () => {
      const args = ignoring ? ["0.0.0.0", "--ignore-term"] : ["0.0.0.0"];
      const { proc } = await wrapped([], args);
      const { pid } = await nthStart(proc);
      assert.ok(alive(pid));
      const started = Date.now();
      assert.equal(await within(10000, proc.kill("SIGTERM"), "proxy exit"), 0, proc.stderr);
      assert.ok(Date.now() - started < (ignoring ? 8000 : 5000), `${Date.now() - started} ms`);
      assert.equal(alive(pid), false, `program ${pid} still there`);
      if (ignoring) assert.match(proc.stderr, /sending SIGKILL/);
    });
  }
});

describe("websockify -- PROGRAM without a C compiler", { skip: LINUX, timeout: 30000 }, () => {
  test("one error line names what to install; exit 1", async () => {
    const port = await freePort();
    const empty = fs.mkdtempSync(path.join(CACHE, "empty-"));
    const proc = spawnCli([`127.0.0.1:${port}`, "--", "node", FIXTURE, String(port)], {
      CC: "no-such-compiler",
      XDG_CACHE_HOME: empty,
    });
    proxies.push(proc);
    assert.equal(await within(10000, proc.exited, "proxy exit"), 1);
    assert.equal(proc.stderr, `websockify: error: ${NO_COMPILER_TEXT}\n`);
  });
});

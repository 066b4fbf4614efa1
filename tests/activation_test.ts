/**
 * Running under a service manager: systemd socket activation (the socket
 * passed as fd 3, under `systemd-socket-activate`) and the `run` script at
 * the repository root that noVNC's `utils/novnc_proxy` starts.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import type WebSocket from "ws";
import {
  cliCommand,
  type CliProcess,
  closed,
  freePort,
  openClient,
  receive,
  ROOT,
  spawnCommand,
  startEchoServer,
  type TcpServer,
  waitFor,
  which,
  within,
} from "./_harness.ts";
import { after, before, describe, needs, test } from "./_skip.ts";

const ACTIVATE = which("systemd-socket-activate");
const NOVNC_PROXY = "/usr/share/novnc/utils/novnc_proxy";

let echo: TcpServer;
const procs: CliProcess[] = [];
before(async () => {
  echo = await startEchoServer();
});
after(async () => {
  await Promise.all(procs.map((p) => p.kill("SIGKILL")));
  await echo.close();
});

/** Sends `text` and expects it back through the echo target. */
async function echoOnce(ws: WebSocket, text: string): Promise<void> {
  const data = new TextEncoder().encode(text);
  const back = receive(ws, data.byteLength);
  ws.send(data);
  assert.deepEqual(await within(10000, back, "echo"), data);
}

/** A ws client on `port`, retried while the proxy starts (bounded). */
async function connect(port: number, proc: CliProcess): Promise<WebSocket> {
  const end = Date.now() + 30000;
  for (;;) {
    try {
      return await within(20000, openClient(port, ["binary"]), "ws open");
    } catch (error) {
      if (Date.now() > end || proc.child.exitCode !== null) {
        throw new Error(`${error}; output: ${proc.stdout}${proc.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

describe("systemd socket activation", {
  skip: needs("systemd-socket-activate", ACTIVATE !== undefined, "apt-get install systemd"),
  timeout: 60000,
}, () => {
  test("listens on the socket passed as fd 3 and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    // systemd-socket-activate binds, then execs the command (same pid) on the first connection.
    const proc = spawnCommand([
      ACTIVATE!,
      ...["-l", `127.0.0.1:${port}`, "--"],
      ...cliCommand(),
      `127.0.0.1:${echo.port}`,
    ]);
    procs.push(proc);
    const ws = await connect(port, proc);
    await echoOnce(ws, "activated");
    assert.match(proc.stderr, /Listen on the activated socket \(fd 3\)/);
    ws.close();
    await closed(ws);
    assert.equal(await within(15000, proc.kill("SIGTERM"), "exit"), 0, proc.stderr);
  });

  test("a wrapped program does not see LISTEN_FDS, LISTEN_PID or LISTEN_FDNAMES", {
    skip: needs(
      "a C compiler (cc) to build rebind.so",
      which("cc") !== undefined,
      "apt-get install gcc",
    ),
  }, async () => {
    const port = await freePort();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-activate-"));
    const fixture = path.join(ROOT, "tests", "fixtures", "wrap_server.mjs");
    const proc = spawnCommand([
      ACTIVATE!,
      ...["-l", `127.0.0.1:${port}`, "--fdname=websockify.socket"],
      // It passes on only the environment named here (and its LISTEN_* variables).
      ...["-E", "PATH", "-E", "XDG_CACHE_HOME", "--"],
      ...cliCommand(),
      // An option first: Bun drops a "--" right after the script name.
      ...["--wrap-mode=exit", "--", "node", fixture, String(port), "0.0.0.0", "--env", "--exit=0"],
    ], { XDG_CACHE_HOME: cache });
    procs.push(proc);
    // The first connection starts the command; the program exits at once, and so does the proxy.
    let sock: net.Socket | undefined;
    try {
      await waitFor(
        () => {
          // Retried until systemd-socket-activate has bound the port.
          if (sock?.readyState === "open") return true;
          if (!sock || sock.destroyed) {
            sock = net.connect(port, "127.0.0.1");
            sock.on("error", () => sock!.destroy());
          }
          return false;
        },
        15000,
        "first connection",
      );
      assert.equal(await within(30000, proc.exited, "proxy exit"), 0, proc.stderr);
    } finally {
      sock?.destroy();
      fs.rmSync(cache, { recursive: true, force: true });
    }
    assert.match(proc.stderr, /Listen on the activated socket \(fd 3\)/);
    const names = /^env (.*)$/m.exec(proc.stdout)?.[1]?.split(",") ?? [];
    assert.ok(names.includes("REBIND_OLD_PORT"), proc.stdout);
    for (const name of ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]) {
      assert.ok(!names.includes(name), `${name} reached the program`);
    }
  });
});

describe("run, as noVNC's utils/novnc_proxy starts it", {
  skip: needs("noVNC's novnc_proxy", fs.existsSync(NOVNC_PROXY), "apt-get install novnc"),
  timeout: 60000,
}, () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-novnc-proxy-"));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /**
   * Runs a copy of novnc_proxy from `dir` with `env`, expects `using` in its
   * output, proxies one echo through it and checks that SIGTERM stops the
   * proxy it started.
   */
  async function throughNovncProxy(dir: string, env: Record<string, string>, using: RegExp) {
    fs.copyFileSync(NOVNC_PROXY, path.join(dir, "novnc_proxy"));
    fs.chmodSync(path.join(dir, "novnc_proxy"), 0o755);
    const port = await freePort();
    const proc = spawnCommand([
      path.join(dir, "novnc_proxy"),
      ...["--listen", String(port), "--vnc", `127.0.0.1:${echo.port}`],
      ...["--web", "/usr/share/novnc"],
    ], env);
    procs.push(proc);
    await waitFor(() => proc.stderr.includes("proxying from"), 30000, "proxy start").catch(() => {
      throw new Error(`no banner; output: ${proc.stdout}${proc.stderr}`);
    });
    assert.match(proc.stdout, using);
    const ws = await connect(port, proc);
    await echoOnce(ws, "novnc_proxy");
    ws.close();
    await closed(ws);
    // novnc_proxy's trap stops the proxy it started: the port closes.
    let listening = true;
    const poll = setInterval(() => {
      const sock = net.connect(port, "127.0.0.1");
      sock.once("connect", () => sock.destroy());
      sock.once("error", () => (listening = false));
    }, 200);
    after(() => clearInterval(poll));
    await within(15000, proc.kill("SIGTERM"), "exit");
    await waitFor(() => proc.stdout.includes("Terminating WebSockets proxy"), 5000, "cleanup");
    await waitFor(() => !listening, 15000, "proxy gone");
  }

  test("novnc_proxy --listen PORT --vnc HOST:PORT proxies through websockify/run", async () => {
    // novnc_proxy prefers the websockify folder beside it: this checkout.
    const dir = fs.mkdtempSync(path.join(tmp, "beside-"));
    fs.symlinkSync(ROOT, path.join(dir, "websockify"));
    await throughNovncProxy(dir, {}, /Using local websockify at .*websockify\/run/);
  });

  test("novnc_proxy without a websockify folder runs websockify from PATH", async () => {
    // As after a global install: `websockify` on PATH, ahead of Debian's Python one.
    const dir = fs.mkdtempSync(path.join(tmp, "path-"));
    const bin = fs.mkdtempSync(path.join(tmp, "bin-"));
    fs.symlinkSync(path.join(ROOT, "run"), path.join(bin, "websockify"));
    const using = new RegExp(`Using installed websockify at ${bin}/websockify\n`);
    await throughNovncProxy(dir, { PATH: `${bin}:${process.env.PATH}` }, using);
  });
});

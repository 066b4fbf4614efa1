/**
 * The process around the proxy: recording, --run-once, --timeout,
 * --idle-timeout, -D with --pid-file, --inetd and --unix-listen.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { createLogger } from "../lib/log.ts";
import { escapeRecordBytes, recordFrame } from "../lib/output/record.ts";
import {
  assertStartError,
  cliCommand,
  closed,
  openClient,
  receive,
  runCli,
  sleep,
  spawnCli,
  startEchoServer,
  startProxy,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";

let echo: TcpServer;
let tmp: string;
before(async () => {
  echo = await startEchoServer();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-life-"));
});
after(async () => {
  await echo.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Bun applies a timeout per test only. */
const SLOW = { timeout: 60000 };

const bytes = (text: string) => new Uint8Array([...text].map((c) => c.charCodeAt(0)));

async function echoOnce(ws: WebSocket, data: Uint8Array): Promise<void> {
  const got = receive(ws, data.length);
  ws.send(data);
  assert.deepEqual(await within(5000, got), data);
}

describe("recording", () => {
  test("recordFrame() writes upstream's escaping byte for byte", () => {
    const payload = bytes(`it's \\ \x00\x01\xff\x7f"quote" \n\t\r`);
    assert.equal(
      recordFrame(true, 503.9, payload),
      `'}503}it\\'s \\\\ \\x00\\x01\\xff\\x7f"quote" \\n\\t\\r',\n`,
    );
    assert.equal(recordFrame(false, 2, bytes("RFB 003.008\n")), "'{2{RFB 003.008\\n',\n");
    assert.equal(escapeRecordBytes(new Uint8Array([0x1f, 0x20, 0x7e, 0x80])), "\\x1f ~\\x80");
  });

  test("a recorded session parses back to the bytes sent both ways", async () => {
    const base = path.join(tmp, "sess");
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, { record: base });
    const sent = [
      bytes("RFB 003.008\n"),
      new Uint8Array([0, 1, 2, 39, 92, 255, 10, 13, 9]),
      bytes("bye"),
    ];
    try {
      const ws = await openClient(proxy.addr.port, ["binary"]);
      for (const chunk of sent) await echoOnce(ws, chunk);
      ws.close();
      await closed(ws);
      await waitFor(() => proxy.sessions === 0, 5000, "session end");
    } finally {
      await proxy.close();
    }
    const file = `${base}.1`;
    const text = fs.readFileSync(file, "latin1");
    assert.ok(text.startsWith("var VNC_frame_data = [\n"));
    assert.ok(text.endsWith("'EOF'];\n"));
    // The file is a JavaScript program, as noVNC's player loads it.
    const frames = new Function(`${text}; return VNC_frame_data;`)() as string[];
    assert.equal(frames.at(-1), "EOF");
    const collect = (mark: string) => {
      const out: number[] = [];
      for (const frame of frames.slice(0, -1).filter((f) => f[0] === mark)) {
        const data = frame.slice(frame.indexOf(mark, 1) + 1);
        for (const c of data) out.push(c.charCodeAt(0));
      }
      return new Uint8Array(out);
    };
    const all = new Uint8Array(sent.flatMap((c) => [...c]));
    assert.deepEqual(collect("}"), all, "client to target");
    assert.deepEqual(collect("{"), all, "target to client");
    const times = frames.slice(0, -1).map((f) => Number(f.slice(1, f.indexOf(f[0]!, 1))));
    assert.ok(times.every((t, i) => Number.isInteger(t) && (i === 0 || t >= times[i - 1]!)));
  });
  test("a recording never writes through a symlink at FILE.N", async () => {
    const base = path.join(tmp, "trap");
    const victim = path.join(tmp, "victim");
    fs.writeFileSync(victim, "keep\n");
    fs.symlinkSync(victim, `${base}.1`);
    const lines: string[] = [];
    const logger = createLogger({ write: (line) => lines.push(line) });
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, { record: base, logger });
    try {
      const ws = await openClient(proxy.addr.port, ["binary"]);
      await echoOnce(ws, bytes("still proxied"));
      ws.close();
      await closed(ws);
      await waitFor(() => proxy.sessions === 0, 5000, "session end");
    } finally {
      await proxy.close();
    }
    assert.equal(fs.readFileSync(victim, "utf8"), "keep\n");
    assert.ok(fs.lstatSync(`${base}.1`).isSymbolicLink());
    const warned = () => lines.some((l) => / WARN Cannot write record file .*trap\.1: /.test(l));
    await waitFor(warned, 5000, "record warning");
  });
});

describe("ending by itself", () => {
  test("--run-once exits 0 after the first WebSocket session, not after HTTP", async () => {
    const proc = spawnCli(["--run-once", "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
    try {
      const port = await proc.port();
      const res = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(res.status, 405);
      await res.body?.cancel();
      const ws = await openClient(port, ["binary"]);
      await echoOnce(ws, bytes("once"));
      ws.close();
      assert.equal(await within(8000, proc.exited, "exit"), 0);
      assert.match(proc.stderr, /exiting due to --run-once/);
    } finally {
      await proc.kill("SIGKILL");
    }
  });

  test("--idle-timeout exits after N idle seconds, not while a client is connected", async () => {
    const proc = spawnCli(["--idle-timeout=1", "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
    try {
      const ws = await openClient(await proc.port(), ["binary"]);
      await sleep(2500);
      assert.equal(proc.child.exitCode, null, "exited while a client was connected");
      ws.close();
      assert.equal(await within(8000, proc.exited, "exit"), 0);
      assert.match(proc.stderr, /listener exit due to --idle-timeout 1/);
    } finally {
      await proc.kill("SIGKILL");
    }
  });

  test("--timeout stops accepting, lets the session finish, then exits", async () => {
    const proc = spawnCli(["--timeout=1", "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
    try {
      const port = await proc.port();
      const ws = await openClient(port, ["binary"]);
      await waitFor(() => proc.stderr.includes("listener exit due to --timeout 1"), 5000);
      await assert.rejects(openClient(port, ["binary"]), "a new client was accepted");
      await echoOnce(ws, bytes("still here"));
      ws.close();
      assert.equal(await within(8000, proc.exited, "exit"), 0);
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});

describe("sockets and daemons", () => {
  test(
    "-D detaches, writes --pid-file, serves, survives SIGHUP, stops on SIGTERM",
    SLOW,
    async () => {
      const pidFile = path.join(tmp, "ws.pid");
      const proc = spawnCli([
        "-D",
        `--pid-file=${pidFile}`,
        "127.0.0.1:0",
        `127.0.0.1:${echo.port}`,
      ]);
      let pid = 0;
      try {
        const port = await proc.port();
        assert.equal(await within(10000, proc.exited, "parent exit"), 0);
        pid = Number(fs.readFileSync(pidFile, "utf8"));
        assert.ok(pid > 0 && pid !== proc.child.pid);
        // logrotate's postrotate: served after the signal, so it survived it.
        process.kill(pid, "SIGHUP");
        const ws = await openClient(port, ["binary"]);
        await echoOnce(ws, bytes("daemon"));
        const done = closed(ws);
        process.kill(pid, "SIGTERM");
        assert.equal((await within(8000, done)).code, 1001);
        await waitFor(() => !fs.existsSync(pidFile), 8000, "pid file removed");
      } finally {
        if (pid) {
          try {
            process.kill(pid, "SIGKILL");
          } catch { /* already gone */ }
        }
      }
    },
  );

  test("--unix-listen serves on a socket file with --unix-listen-mode", async () => {
    const sock = path.join(tmp, "ws.sock");
    const proc = spawnCli([
      `--unix-listen=${sock}`,
      "--unix-listen-mode=660",
      `127.0.0.1:${echo.port}`,
    ]);
    try {
      await waitFor(() => proc.stderr.includes("proxying from"), 15000, "start");
      assert.match(proc.stderr, /Listen on unix socket /);
      const stat = fs.statSync(sock);
      assert.ok(stat.isSocket());
      assert.equal(stat.mode & 0o777, 0o660);
      const ws = new WebSocket(`ws+unix://${sock}:/`, ["binary"]);
      await within(5000, new Promise((r, j) => (ws.once("open", r), ws.once("error", j))));
      await echoOnce(ws, bytes("unix"));
      ws.close();
      await closed(ws);
    } finally {
      await proc.kill("SIGKILL");
    }
  });

  test(
    "--pid-file refuses a symlink and a live process's file, before the banner",
    SLOW,
    async () => {
      const victim = path.join(tmp, "precious");
      fs.writeFileSync(victim, "keep\n");
      const link = path.join(tmp, "link.pid");
      fs.symlinkSync(victim, link);
      const args = (
        file: string,
      ) => [`--pid-file=${file}`, "127.0.0.1:0", `127.0.0.1:${echo.port}`];
      const viaLink = await runCli(args(link));
      assertStartError(viaLink, /Cannot write pid file .*link\.pid: is a symbolic link$/);
      assert.equal(fs.readFileSync(victim, "utf8"), "keep\n");
      const live = path.join(tmp, "live.pid");
      fs.writeFileSync(live, `${process.pid}\n`); // this test runner: alive
      assertStartError(await runCli(args(live)), /pid file .*live\.pid: process \d+ is running$/);
      assert.equal(fs.readFileSync(live, "utf8"), `${process.pid}\n`);
    },
  );

  test("--pid-file replaces a stale file and removes it on exit", SLOW, async () => {
    const file = path.join(tmp, "stale.pid");
    const dead = spawn(process.execPath, ["--version"], { stdio: "ignore" });
    await new Promise((resolve) => dead.once("exit", resolve));
    fs.writeFileSync(file, `${dead.pid}\n`);
    const proc = spawnCli([`--pid-file=${file}`, "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
    try {
      await proc.port();
      assert.equal(fs.readFileSync(file, "utf8"), `${proc.child.pid}\n`);
      assert.equal(await within(10000, proc.kill("SIGTERM"), "exit"), 0);
      assert.ok(!fs.existsSync(file));
    } finally {
      await proc.kill("SIGKILL");
    }
  });

  test("--unix-listen refuses a path that is not a socket and leaves it", SLOW, async () => {
    const file = path.join(tmp, "regular");
    fs.writeFileSync(file, "keep\n");
    const result = await runCli([`--unix-listen=${file}`, `127.0.0.1:${echo.port}`]);
    assertStartError(result, /Cannot listen on unix socket .*regular: not a socket$/);
    assert.equal(fs.readFileSync(file, "utf8"), "keep\n");
  });

  test(
    "--unix-listen refuses a live socket, replaces a stale one, removes only its own",
    SLOW,
    async () => {
      const sock = path.join(tmp, "shared.sock");
      const args = [`--unix-listen=${sock}`, `127.0.0.1:${echo.port}`];
      // A live server at the path: refused, and the server keeps its socket.
      // The proxy's probe connects and resets: ignore that.
      const holder = net.createServer((c) => c.on("error", () => {}).end("holder\n"));
      await new Promise<void>((resolve) => holder.listen(sock, resolve));
      try {
        assertStartError(await runCli(args), /unix socket .*shared\.sock: address already in use$/);
        const reply = await within(
          5000,
          new Promise<string>((resolve, reject) => {
            const c = net.connect(sock);
            let text = "";
            c.setEncoding("utf8").on("data", (d: string) => (text += d));
            c.once("end", () => resolve(text));
            c.once("error", reject);
          }),
        );
        assert.equal(reply, "holder\n");
      } finally {
        await new Promise((resolve) => holder.close(resolve));
      }
      // A stale socket (nobody accepts): a second name for it outlives the server.
      const spare = path.join(tmp, "spare.sock");
      const gone = net.createServer();
      await new Promise<void>((resolve) => gone.listen(spare, resolve));
      fs.rmSync(sock, { force: true });
      fs.linkSync(spare, sock);
      await new Promise((resolve) => gone.close(resolve));
      fs.rmSync(spare, { force: true });
      assert.ok(fs.lstatSync(sock).isSocket());
      const serve = async () => {
        const proc = spawnCli(args);
        await waitFor(() => proc.stderr.includes("proxying from"), 15000, "start");
        const ws = new WebSocket(`ws+unix://${sock}:/`, ["binary"]);
        await within(5000, new Promise((r, j) => (ws.once("open", r), ws.once("error", j))));
        await echoOnce(ws, bytes("unix"));
        ws.close();
        await closed(ws);
        return proc;
      };
      const first = await serve();
      try {
        assert.equal(await within(10000, first.kill("SIGTERM"), "exit"), 0);
      } finally {
        await first.kill("SIGKILL");
      }
      assert.ok(!fs.existsSync(sock), "its own socket removed on exit");
      // Another file took the path meanwhile: not ours, so it stays.
      const second = await serve();
      try {
        fs.rmSync(sock);
        fs.writeFileSync(sock, "new owner\n");
        assert.equal(await within(10000, second.kill("SIGTERM"), "exit"), 0);
      } finally {
        await second.kill("SIGKILL");
      }
      assert.equal(fs.readFileSync(sock, "utf8"), "new owner\n");
    },
  );

  test("--inetd takes the listening socket from fd 0", async () => {
    // A plain Node parent passes its listening fd as the child's stdin.
    const [cmd, ...pre] = cliCommand();
    const script = `
      const net = require("node:net");
      const { spawn } = require("node:child_process");
      const srv = net.createServer().listen(0, "127.0.0.1", () => {
        const child = spawn(${JSON.stringify(cmd)}, ${JSON.stringify([...pre, "--inetd"])}
          .concat([process.argv[1]]), { stdio: [srv._handle.fd, "inherit", "inherit"] });
        console.log(srv.address().port);
        srv.close();
        process.on("SIGTERM", () => { child.kill("SIGKILL"); process.exit(0); });
        child.on("exit", (c) => process.exit(c ?? 1));
      });`;
    const parent = spawn("node", ["-e", script, `127.0.0.1:${echo.port}`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    parent.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    try {
      const port = await within(
        10000,
        new Promise<number>((r) => parent.stdout.once("data", (d) => r(Number(String(d))))),
      );
      await waitFor(() => stderr.includes("proxying from"), 15000, "start");
      assert.match(stderr, /Listen for inetd connections/);
      const ws = await openClient(port, ["binary"]);
      await echoOnce(ws, bytes("inetd"));
      ws.close();
      await closed(ws);
    } finally {
      parent.kill("SIGTERM");
      await new Promise((r) => parent.once("exit", r));
    }
  });
});

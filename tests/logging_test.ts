/**
 * Logging: the syslog formats byte for byte, the log file (batching,
 * reopening), and the CLI with `--log-file`, SIGHUP, `--syslog` over UDP, a
 * unix STREAM socket and a real unix DATAGRAM socket (received by a small
 * Deno script with `--unstable-net`, the one runtime here that can).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { openLogFile } from "../adapters/output/log_file.ts";
import { TextBatch } from "../adapters/output/text_batch.ts";
import { processHost } from "../adapters/cli/host.ts";
import { LOG_MAX_PENDING } from "../lib/limits.ts";
import { createSyslogSink } from "../adapters/output/syslog.ts";
import { loggerCommand, loggerLine } from "../adapters/output/syslog_unix.ts";
import { createLogger, type Level, logEvent, tokenLabel } from "../lib/log.ts";
import {
  FACILITY_DAEMON,
  FACILITY_USER,
  formatSyslog,
  parseSyslogAddress,
  type SyslogFormat,
  teeLogger,
} from "../lib/output/syslog.ts";
import { UsageError } from "../lib/errors.ts";
import {
  cliCommand,
  type CliProcess,
  closed,
  openClient,
  rawHttp,
  receive,
  ROOT,
  runCli,
  spawnCli,
  spawnCommand,
  startEchoServer,
  startTcpServer,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";
import { after, before, describe, needs, type SkipIf, test } from "./_skip.ts";

const DENO = path.join(ROOT, "node_modules", ".bin", "deno");
/** Why the unix datagram tests skip, or false. */
const DGRAM_SKIP: SkipIf =
  needs("node_modules/.bin/deno to receive unix datagrams", fs.existsSync(DENO), "npm ci") ||
  needs(
    "logger(1) from util-linux",
    spawnSync("logger", ["--version"]).status === 0,
    "apt-get install bsdutils",
  );

const decode = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);
const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) ./;
const RFC5424 = /^<(\d+)>1 (\S+) (\S+) (\S+) (\d+) - - (.*)$/s;

/** Checks an RFC 5424 line's PRI, host, app and PID; returns its timestamp. */
function rfc5424Time(text: string, childPid: number | undefined): string {
  const [, pri, time, host, app, pid] = RFC5424.exec(text) ?? assert.fail(text);
  assert.deepEqual([pri, host, app, Number(pid)], ["14", os.hostname(), "websockify", childPid]);
  return time!;
}

let tmp: string;
let echo: TcpServer;
const procs: CliProcess[] = [];
const children: ChildProcess[] = [];
const cleanups: (() => unknown)[] = [];
before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-log-"));
  echo = await startEchoServer();
});
after(async () => {
  for (const proc of procs) await proc.kill("SIGKILL");
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  for (const cleanup of cleanups) await cleanup();
  await echo.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function cli(args: string[]): CliProcess {
  const proc = spawnCli([...args, "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
  procs.push(proc);
  return proc;
}

/** One WebSocket session through the proxy: open, echo, close. */
async function session(port: number): Promise<void> {
  const ws = await openClient(port, ["binary"]);
  const got = receive(ws, 3);
  ws.send(new Uint8Array([1, 2, 3]));
  await within(5000, got, "echo");
  ws.close();
  await closed(ws);
}

describe("syslog formats", () => {
  const base: SyslogFormat = {
    legacy: false,
    facility: FACILITY_USER,
    hostname: "host1",
    pid: 4242,
    now: new Date("2026-11-21T10:37:36.123Z"),
  };
  const TABLE: [Level, string, Partial<SyslogFormat>, string][] = [
    ["info", "hello", {}, "<14>1 2026-11-21T10:37:36Z host1 websockify 4242 - - hello"],
    ["error", "bad", {}, "<11>1 2026-11-21T10:37:36Z host1 websockify 4242 - - bad"],
    ["warn", "w", {}, "<12>1 2026-11-21T10:37:36Z host1 websockify 4242 - - w"],
    ["debug", "d", {}, "<15>1 2026-11-21T10:37:36Z host1 websockify 4242 - - d"],
    [
      "info",
      "x",
      { facility: FACILITY_DAEMON },
      "<30>1 2026-11-21T10:37:36Z host1 websockify 4242 - - x",
    ],
    [
      "error",
      "x",
      { facility: FACILITY_DAEMON },
      "<27>1 2026-11-21T10:37:36Z host1 websockify 4242 - - x",
    ],
    ["info", "a\nb\n", {}, "<14>1 2026-11-21T10:37:36Z host1 websockify 4242 - - a b "],
    ["info", "x", { stream: true }, "<14>1 2026-11-21T10:37:36Z host1 websockify 4242 - - x\n"],
    ["info", "x", { hostname: "hôst" }, "<14>1 2026-11-21T10:37:36Z hst websockify 4242 - - x"],
    ["info", "x", { hostname: "" }, "<14>1 2026-11-21T10:37:36Z - websockify 4242 - - x"],
    ["info", "hello", { legacy: true }, "<14>websockify[4242]: hello"],
    ["warn", "a\nb", { legacy: true, facility: FACILITY_DAEMON }, "<28>websockify[4242]: a b"],
    ["info", "x", { legacy: true, stream: true }, "<14>websockify[4242]: x\n"],
  ];
  for (const [level, message, options, want] of TABLE) {
    test(`${level} ${JSON.stringify(message)} ${JSON.stringify(options)}`, () => {
      assert.equal(decode(formatSyslog(level, message, { ...base, ...options })), want);
    });
  }

  test("non-ASCII is UTF-8 after a BOM, in both formats", () => {
    for (const legacy of [false, true]) {
      const bytes = formatSyslog("info", "café", { ...base, legacy })!;
      const head = legacy
        ? "<14>websockify[4242]: "
        : "<14>1 2026-11-21T10:37:36Z host1 websockify 4242 - - ";
      assert.deepEqual([...bytes.subarray(0, head.length)], [...new TextEncoder().encode(head)]);
      assert.deepEqual([...bytes.subarray(head.length)], [
        0xef,
        0xbb,
        0xbf,
        0x63,
        0x61,
        0x66,
        0xc3,
        0xa9,
      ]);
    }
  });

  test("an empty message is not sent; the app name is cut at 24", () => {
    assert.equal(formatSyslog("info", "", base), undefined);
    const long = decode(
      formatSyslog("info", "x", { ...base, legacy: true, ident: "a".repeat(30) }),
    );
    assert.equal(long, `<14>${"a".repeat(24)}[4242]: x`);
  });

  test("parseSyslogAddress: host:port at the last colon, else a path", () => {
    assert.deepEqual(parseSyslogAddress("/dev/log"), { kind: "unix", path: "/dev/log" });
    assert.deepEqual(parseSyslogAddress("loghost:514"), {
      kind: "udp",
      host: "loghost",
      port: 514,
    });
    assert.deepEqual(parseSyslogAddress("::1:514"), { kind: "udp", host: "::1", port: 514 });
    assert.deepEqual(parseSyslogAddress("[::1]:514"), { kind: "udp", host: "::1", port: 514 });
    assert.deepEqual(parseSyslogAddress(":514"), { kind: "udp", host: "localhost", port: 514 });
    for (const bad of ["host:", "host:x", "host:70000", "host:-1", "host:5.1"]) {
      assert.throws(() => parseSyslogAddress(bad), new UsageError("Error parsing syslog port"));
    }
  });

  test("logger(1) gets a PRI prefix per line and upstream's body", () => {
    assert.equal(decode(loggerLine("info", "a\nb", FACILITY_USER)), "<14>a b\n");
    assert.deepEqual([...loggerLine("error", "é", FACILITY_DAEMON)], [
      ...new TextEncoder().encode("<27>"),
      0xef,
      0xbb,
      0xbf,
      0xc3,
      0xa9,
      0x0a,
    ]);
    const args = loggerCommand("/dev/log", true, 7);
    assert.deepEqual(args.slice(0, 3), ["logger", "--socket", "/dev/log"]);
    assert.ok(
      args.includes("--rfc3164") && args.includes("--id=7") && args.includes("--prio-prefix"),
    );
    assert.ok(loggerCommand("/dev/log", false, 7).includes("--rfc5424=notq"));
  });

  test("teeLogger sends level and bare message; debug only when verbose", () => {
    for (const verbose of [false, true]) {
      const lines: string[] = [];
      const sent: [Level, string][] = [];
      const traffic = () => {};
      const log = teeLogger(
        createLogger({ write: (l) => lines.push(l), verbose, traffic }),
        (level, message) => sent.push([level, message]),
      );
      log.debug("d");
      log.info("i");
      log.warn("w");
      log.error("e");
      const want: [Level, string][] = [["info", "i"], ["warn", "w"], ["error", "e"]];
      assert.deepEqual(sent, verbose ? [["debug", "d"], ...want] : want);
      assert.equal(lines.length, sent.length);
      assert.match(lines.at(-1)!, / ERROR e$/);
      assert.equal(log.verbose, verbose);
      assert.equal(log.traffic, traffic);
    }
  });

  test("a text logger takes no fields: logEvent writes its plain line; JSON adds them", () => {
    const at = () => new Date("2026-12-06T10:00:00.000Z");
    const lines: string[] = [];
    const text = createLogger({ write: (l) => lines.push(l), now: at });
    // No `event`: callers such as the sessions skip building fields it would drop.
    assert.equal(text.event, undefined);
    logEvent(text, "warn", "#1 a\nb", { event: "close", id: 1 });
    logEvent(text, "debug", "hidden", { id: 1 });
    const json = createLogger({ write: (l) => lines.push(l), now: at, format: "json" });
    logEvent(json, "info", "#1 x", { event: "close", id: 1, peer: undefined });
    assert.deepEqual(lines, [
      "2026-12-06T10:00:00.000Z WARN #1 a\\nb",
      '{"time":"2026-12-06T10:00:00.000Z","level":"info","msg":"#1 x","event":"close","id":1}',
    ]);
  });
});

describe("log file", () => {
  test("batches lines, writes them on flush, reopens at the same path", async () => {
    const file = path.join(tmp, "unit.log");
    const log = openLogFile(file);
    log.write("one");
    log.write("two");
    assert.equal(fs.readFileSync(file, "utf8"), "", "written on the next turn");
    await waitFor(() => fs.readFileSync(file, "utf8") === "one\ntwo\n", 5000, "batch");
    fs.renameSync(file, `${file}.1`);
    log.write("three");
    log.reopen(); // flushes to the renamed file first
    log.write("four");
    log.close();
    log.write("dropped");
    assert.equal(fs.readFileSync(`${file}.1`, "utf8"), "one\ntwo\nthree\n");
    assert.equal(fs.readFileSync(file, "utf8"), "four\n");
  });

  test("--log-file gets the banner and the session with times and levels", async () => {
    const file = path.join(tmp, "cli.log");
    fs.writeFileSync(file, "old line\n"); // appended to, not replaced
    const proc = cli(["--log-file", file]);
    await session(await proc.port());
    await waitFor(() => fs.readFileSync(file, "utf8").includes(": closed "), 5000, "close line");
    assert.equal(await within(10000, proc.kill("SIGTERM"), "exit"), 0);
    const [first, ...lines] = fs.readFileSync(file, "utf8").trimEnd().split("\n");
    assert.equal(first, "old line");
    for (const line of lines) assert.match(line, LINE);
    const text = lines.join("\n");
    assert.match(text, /INFO WebSocket server settings:\n.* INFO {3}- Listen on 127\.0\.0\.1:\d+/);
    assert.match(text, / INFO #1 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+: open \(ws:\/\//);
    assert.match(text, / INFO #1 .*: closed \d+ after /);
    assert.match(text, / INFO Got SIGTERM, closing 0 session\(s\)$/, "flushed on exit");
    assert.equal(proc.stderr.trimEnd().split("\n").length, lines.length, "stderr has them too");
  });

  test("SIGHUP after a rename: new lines go to a new file at the path", async () => {
    const file = path.join(tmp, "rotate.log");
    const proc = cli(["--log-file", file]);
    const port = await proc.port();
    fs.renameSync(file, `${file}.1`);
    process.kill(proc.child.pid!, "SIGHUP");
    await waitFor(() => fs.existsSync(file), 5000, "reopened file");
    await session(port);
    await waitFor(() => fs.readFileSync(file, "utf8").includes(": closed "), 5000, "close line");
    const old = fs.readFileSync(`${file}.1`, "utf8");
    assert.match(old, /WebSocket server settings:/);
    assert.doesNotMatch(old, /: open /);
    // The reload's own line is the first in the new file.
    assert.match(
      fs.readFileSync(file, "utf8"),
      /^\S+Z INFO Reloaded: log file\n\S+Z INFO #1 .*: open /,
    );
    assert.equal(await within(10000, proc.kill("SIGTERM"), "exit"), 0, "SIGHUP did not stop it");
  });

  test("SIGHUP without --log-file leaves the proxy serving", async () => {
    const proc = cli([]);
    const port = await proc.port();
    process.kill(proc.child.pid!, "SIGHUP");
    // Served after the signal was sent, so the process survived it.
    await session(port);
    await waitFor(() => proc.stderr.includes(": closed "), 5000, "close line");
    assert.equal(await within(10000, proc.kill("SIGTERM"), "exit"), 0, "SIGHUP did not stop it");
    assert.doesNotMatch(proc.stderr, /SIGHUP|WARN/);
  });

  test("a log file that cannot be opened is a start-up error", async () => {
    const res = await runCli(["--log-file", path.join(tmp, "no", "dir.log"), "6080", "x:1"]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /websockify: error: Cannot open log file .*no\/dir\.log: /);
  });
});

/** A UDP syslog server on loopback. */
async function udpServer(): Promise<{ port: number; messages: Buffer[] }> {
  const socket = dgram.createSocket("udp4");
  const messages: Buffer[] = [];
  socket.on("message", (m) => messages.push(m));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  cleanups.push(() => socket.close());
  return { port: socket.address().port, messages };
}

describe("stderr and log lines are written once per turn", () => {
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

  test("a turn's lines are one write, in order; a flood is written at once", async () => {
    const writes: string[] = [];
    const batch = new TextBatch((text) => writes.push(text));
    batch.push("a\n");
    batch.push("b\n");
    assert.deepEqual(writes, [], "nothing before the turn ends");
    await nextTurn();
    assert.deepEqual(writes, ["a\nb\n"]);
    const big = "x".repeat(LOG_MAX_PENDING);
    batch.push("c\n");
    batch.push(big);
    assert.deepEqual(writes, ["a\nb\n", `c\n${big}`], "past the bound: written at once");
    batch.close();
    batch.flush();
    assert.equal(writes.length, 2);
  });

  test("the process host's stderr goes through the batch", async () => {
    const writes: string[] = [];
    const original = process.stderr.write;
    process.stderr.write = ((text: string) => writes.push(text) > 0) as typeof original;
    try {
      const host = processHost();
      host.stderr("one\n");
      host.stderr("two\n");
      assert.deepEqual(writes, []);
      await nextTurn();
    } finally {
      process.stderr.write = original;
    }
    assert.deepEqual(writes, ["one\ntwo\n"]);
  });

  test("what is queued is written when the process exits at once", async () => {
    const script = [
      `import { processHost } from ${JSON.stringify(path.join(ROOT, "adapters/cli/host.ts"))};`,
      "const host = processHost();",
      'host.stderr("first\\n");',
      'host.stderr("last\\n");',
      "host.exit(3);",
    ].join("\n");
    const file = path.join(tmp, "exit_flush.ts");
    fs.writeFileSync(file, script);
    // The CLI's command with this script in place of cli.ts.
    const proc = spawnCommand([...cliCommand().slice(0, -1), file]);
    assert.equal(await within(20000, proc.exited, "exit"), 3);
    await waitFor(() => proc.stderr.length >= 11, 5000, "stderr");
    assert.equal(proc.stderr, "first\nlast\n");
  });
});

describe("log injection", () => {
  test("the logger and teeLogger escape control characters in messages", () => {
    const lines: string[] = [];
    const sent: string[] = [];
    const log = teeLogger(
      createLogger({ write: (l) => lines.push(l) }),
      (_level, message) => sent.push(message),
    );
    log.info("a\nb\r\tc\x00\x1b[2J\x7f\x85\u2028d é");
    const want = "a\\nb\\r\\tc\\x00\\x1b[2J\\x7f\\x85\\u2028d é";
    assert.deepEqual(sent, [want]);
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.endsWith(` INFO ${want}`), lines[0]);
  });

  test("a token and a Basic user with newlines are one escaped line each; tokens never whole", async () => {
    const tokens = path.join(tmp, "inject.cfg");
    fs.writeFileSync(tokens, `vm1: 127.0.0.1:${echo.port}\n`);
    const file = path.join(tmp, "inject.log");
    const server = await udpServer();
    const proc = spawnCli([
      "--token-plugin=TokenFile",
      `--token-source=${tokens}`,
      "--auth-plugin=BasicHTTPAuth",
      "--auth-source=u:p",
      "--log-file",
      file,
      "--syslog",
      `127.0.0.1:${server.port}`,
      "127.0.0.1:0",
    ]);
    procs.push(proc);
    const port = await proc.port();
    const forged = "2026-01-01T00:00:00.000Z INFO forged";
    const upgrade = (query: string, user: string) =>
      rawHttp(
        port,
        `GET /${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          `Sec-WebSocket-Version: 13\r\nAuthorization: Basic ${btoa(user)}\r\n\r\n`,
      );
    const secret = "s3cret-token-0123456789abcdef";
    const token = `x%0D%0A${encodeURIComponent(forged)}-token`;
    assert.equal((await within(5000, upgrade(`?token=${token}`, "u:p"))).status, 404);
    assert.equal((await within(5000, upgrade(`?token=${secret}`, "u:p"))).status, 404);
    const user = "ev\nil 2026-01-01 INFO forged-user:wrong"; // the name ends at the first colon
    assert.equal((await within(5000, upgrade("?token=vm1", user))).status, 401);
    const done = (text: string) => text.includes("Wrong credentials");
    await waitFor(() => done(proc.stderr) && done(fs.readFileSync(file, "utf8")), 5000, "lines");
    await waitFor(() => server.messages.some((m) => done(m.toString())), 5000, "datagrams");
    const datagrams = server.messages.map((m) => m.toString("latin1")).join("\n");
    for (const text of [proc.stderr, fs.readFileSync(file, "utf8"), datagrams]) {
      assert.ok(!text.includes(secret), text);
      assert.ok(!text.includes("\r"), text);
      // Every line is a whole log line; each forgery sits inside one.
      const lines = text.trimEnd().split("\n");
      if (text !== datagrams) { for (const line of lines) assert.match(line, LINE); }
      const tokenLines = lines.filter((l) => l.includes("Token 'x\\r\\n"));
      assert.equal(tokenLines.length, 1, text);
      assert.match(tokenLines[0]!, /Token 'x\\r\\n2\.\.#[0-9a-f]{8}' not found$/);
      const userLines = lines.filter((l) => l.includes("forged-user"));
      assert.equal(userLines.length, 1, text);
      assert.match(
        userLines[0]!,
        /Wrong credentials for user 'ev\\nil 2026-01-01 INFO forged-user'$/,
      );
      assert.equal(lines.filter((l) => l.includes("forged")).length, 1, text);
    }
  });
});

describe("--log-format=json", () => {
  /** Every line parsed; fails on any line that is not one JSON object. */
  const parse = (text: string) =>
    text.trimEnd().split("\n").map((line) => {
      const entry = JSON.parse(line);
      assert.equal(typeof entry, "object", line);
      assert.match(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, line);
      assert.ok(["debug", "info", "warn", "error"].includes(entry.level), line);
      assert.equal(typeof entry.msg, "string", line);
      return entry as Record<string, unknown>;
    });

  test("sessions and refusals are JSON lines with their fields, in stderr and --log-file", async () => {
    // A target that answers the first chunk with it and "!", then closes.
    const target = await startTcpServer((sock) =>
      sock.once("data", (data) => sock.end(Buffer.concat([data, Buffer.from("!")])))
    );
    cleanups.push(() => target.close());
    const tokens = path.join(tmp, "json.cfg");
    fs.writeFileSync(tokens, `vm1: 127.0.0.1:${target.port}\nvm2: 127.0.0.1:${echo.port}\n`);
    const file = path.join(tmp, "json.log");
    const proc = spawnCli([
      "--log-format=json",
      "--token-plugin=TokenFile",
      `--token-source=${tokens}`,
      "--log-file",
      file,
      "127.0.0.1:0",
    ]);
    procs.push(proc);
    const port = await proc.port();

    // #1: the target closes.
    const ws = await openClient(port, ["binary"], "127.0.0.1", "/?token=vm1");
    const got = receive(ws, 4);
    ws.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual([...await within(5000, got, "reply")], [1, 2, 3, 33]);
    assert.deepEqual(await within(5000, closed(ws), "close"), {
      code: 1000,
      reason: "Target closed",
    });
    // #2: the client closes.
    const ws2 = await openClient(port, ["binary"], "127.0.0.1", "/?token=vm2");
    const echoed = receive(ws2, 2);
    ws2.send(new Uint8Array([7, 8]));
    await within(5000, echoed, "echo");
    ws2.close();
    await closed(ws2);
    // #3: a wrong subprotocol; #4: a token with CR LF, unknown.
    const upgrade = (query: string, protocol: string) =>
      rawHttp(
        port,
        `GET /${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
      );
    assert.equal((await within(5000, upgrade("?token=vm1", "chat"))).status, 400);
    const secret = 'a\r\n{"forged":1}-secret-token';
    const res = await within(5000, upgrade(`?token=${encodeURIComponent(secret)}`, "binary"));
    assert.equal(res.status, 404);

    const closes = () => parse(proc.stderr).filter((e) => e.event === "close").length;
    await waitFor(() => closes() === 2, 5000, "two close lines");
    await waitFor(() => proc.stderr.includes("not found"), 5000, "token line");
    assert.equal(await within(10000, proc.kill("SIGTERM"), "exit"), 0);

    const fileText = () => fs.readFileSync(file, "utf8");
    await waitFor(() => fileText() === proc.stderr, 5000, "the same lines in the log file");
    assert.ok(!proc.stderr.includes("secret-token"), "a token never whole");
    assert.ok(!proc.stderr.includes("\r"));
    const entries = parse(proc.stderr);
    assert.ok(entries.some((e) => e.msg === "WebSocket server settings:" && e.level === "info"));
    const byEvent = (event: string, id: number) =>
      entries.find((e) => e.event === event && e.id === id) ?? assert.fail(`${event} #${id}`);
    const client = /^127\.0\.0\.1:\d+$/;

    const open1 = byEvent("open", 1);
    assert.match(String(open1.client), client);
    assert.deepEqual(
      [open1.target, open1.tls, open1.protocol],
      [`127.0.0.1:${target.port}`, false, "binary"],
    );
    assert.match(String(open1.msg), /^#1 127\.0\.0\.1:\d+ -> .*: open \(ws:\/\//);
    const close1 = byEvent("close", 1);
    assert.equal(close1.client, open1.client);
    assert.deepEqual(
      [
        close1.target,
        close1.bytes_to_target,
        close1.bytes_to_client,
        close1.close_code,
        close1.close_reason,
        close1.closed_by,
      ],
      [`127.0.0.1:${target.port}`, 3, 4, 1000, "Target closed", "target"],
    );
    assert.equal(typeof close1.duration_ms, "number");
    assert.ok((close1.duration_ms as number) >= 0);
    const close2 = byEvent("close", 2);
    assert.deepEqual(
      [close2.target, close2.bytes_to_target, close2.bytes_to_client, close2.closed_by],
      [`127.0.0.1:${echo.port}`, 2, 2, "client"],
    );

    const refusal = byEvent("refuse", 3);
    assert.deepEqual([refusal.status, refusal.level], [400, "info"]);
    assert.match(String(refusal.client), client);
    const token = byEvent("refuse", 4);
    assert.deepEqual([token.status, token.token], [404, tokenLabel(secret)]);
    assert.ok(String(token.msg).includes(`Token '${tokenLabel(secret)}' not found`));
  });

  test("--log-format=json sends one JSON object per syslog message", async () => {
    const server = await udpServer();
    const proc = cli(["--log-format=json", "--syslog", `127.0.0.1:${server.port}`]);
    await session(await proc.port());
    const texts = () => server.messages.map((m) => m.toString("utf8"));
    await waitFor(() => texts().some((t) => t.includes('"event":"close"')), 5000, "close");
    const bodies = texts().map((t) => JSON.parse(RFC5424.exec(t)![6]!.replace(/^\ufeff/, "")));
    assert.equal(bodies[0].msg, "WebSocket server settings:");
    const close = bodies.find((b) => b.event === "close");
    assert.deepEqual([close.id, close.bytes_to_target, close.closed_by], [1, 3, "client"]);
  });

  test("a bad --log-format is a usage error", async () => {
    const res = await runCli(["--log-format=xml", "6080", "x:1"]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /--log-format: invalid choice: 'xml'/);
  });
});

describe("syslog over UDP", () => {
  test("--syslog host:port sends RFC 5424 datagrams", async () => {
    const server = await udpServer();
    const proc = cli(["--syslog", `127.0.0.1:${server.port}`]);
    await session(await proc.port());
    const texts = () => server.messages.map((m) => m.toString("latin1"));
    await waitFor(() => texts().some((t) => t.includes(": closed ")), 5000, "close datagram");
    for (const text of texts()) {
      const time = rfc5424Time(text, proc.child.pid);
      assert.match(time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.ok(!text.endsWith("\n"), "no newline in a datagram");
    }
    assert.equal(RFC5424.exec(texts()[0]!)![6], "WebSocket server settings:");
    assert.ok(texts().some((t) => / - - #1 .*: open \(ws:\/\//.test(t)));
  });

  test("--legacy-syslog sends <PRI>websockify[PID]: message", async () => {
    const server = await udpServer();
    const proc = cli(["--syslog", `127.0.0.1:${server.port}`, "--legacy-syslog"]);
    await proc.port();
    await waitFor(() => server.messages.some((m) => m.includes("proxying from")), 5000, "banner");
    const first = server.messages[0]!.toString("latin1");
    assert.equal(first, `<14>websockify[${proc.child.pid}]: WebSocket server settings:`);
  });

  test("a bad port is a usage error", async () => {
    const res = await runCli(["--syslog", "localhost:x", "6080", "x:1"]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /^Usage:[^]*websockify: error: Error parsing syslog port\n$/);
  });
});

describe("syslog to a unix STREAM socket", () => {
  test("exact bytes, one message per line; the proxy survives the server going away", async () => {
    const sockPath = path.join(tmp, "stream.sock");
    let text = "";
    const conns: net.Socket[] = [];
    const server = net.createServer((sock) => {
      conns.push(sock);
      sock.setEncoding("latin1").on("data", (d: string) => (text += d));
    });
    await new Promise<void>((resolve) => server.listen(sockPath, resolve));
    cleanups.push(() => server.close());
    const proc = cli(["--syslog", sockPath, "--legacy-syslog"]);
    const port = await proc.port();
    await waitFor(() => text.includes("proxying from"), 5000, "banner");
    const pid = proc.child.pid;
    assert.match(text, new RegExp(`^<14>websockify\\[${pid}\\]: WebSocket server settings:\n`));
    server.close();
    for (const sock of conns) sock.destroy();
    await session(port); // logging to nowhere now
    await session(port);
  });

  test("the sink writes upstream's bytes with a newline, BOM included", async () => {
    const sockPath = path.join(tmp, "stream2.sock");
    const chunks: Buffer[] = [];
    const server = net.createServer((sock) => sock.on("data", (d: Buffer) => chunks.push(d)));
    await new Promise<void>((resolve) => server.listen(sockPath, resolve));
    cleanups.push(() => server.close());
    const sink = createSyslogSink({ kind: "unix", path: sockPath }, { legacy: true, facility: 3 });
    sink.send("error", "né\nx");
    sink.send("info", "");
    sink.send("debug", "two");
    await sink.close();
    await waitFor(() => Buffer.concat(chunks).includes("two\n"), 5000, "bytes");
    const want =
      `<27>websockify[${process.pid}]: \ufeffné x\n<31>websockify[${process.pid}]: two\n`;
    assert.equal(Buffer.concat(chunks).toString("utf8"), want);
  });
});

describe("syslog to a unix socket that is not there", () => {
  const cases: [string, string, () => void][] = [
    ["a missing path", "does not exist", () => {}],
    ["a regular file", "is not a socket", () => fs.writeFileSync(path.join(tmp, "file"), "")],
  ];
  for (const [what, problem, make] of cases) {
    test(`${what}: one warning on stderr, and the proxy goes on`, async () => {
      make();
      const sockPath = path.join(tmp, what === "a missing path" ? "nope.sock" : "file");
      const proc = cli(["--syslog", sockPath]);
      const port = await proc.port();
      await waitFor(() => proc.stderr.includes(`syslog: ${sockPath}`), 5000, "warning");
      await session(port);
      await session(port);
      const warnings = proc.stderr.split("\n").filter((l) => l.includes(`syslog: ${sockPath}`));
      assert.equal(warnings.length, 1, proc.stderr);
      assert.match(warnings[0]!, new RegExp(`WARN syslog: \\S+ ${problem}; lines are lost`));
      assert.equal(proc.child.exitCode, null);
      assert.equal(await within(10000, proc.kill("SIGTERM"), "exit"), 0);
    });
  }
});

/** Prints each datagram received on a unix DATAGRAM socket as a base64 line. */
const RECEIVER = `
const path = Deno.args[0];
const conn = Deno.listenDatagram({ transport: "unixpacket", path });
console.log("READY");
for await (const [data] of conn) console.log(btoa(String.fromCharCode(...data)));
`;

/** A unix DATAGRAM syslog server: Deno's `unixpacket` (Node and Bun have none). */
async function unixDgramServer(sockPath: string): Promise<{ messages: Buffer[] }> {
  const script = path.join(tmp, "dgram_receiver.ts");
  fs.writeFileSync(script, RECEIVER);
  const child = spawn(DENO, ["run", "--unstable-net", "-A", script, sockPath], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const messages: Buffer[] = [];
  let ready = false;
  let rest = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    const lines = (rest + d).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      if (line === "READY") ready = true;
      else messages.push(Buffer.from(line, "base64"));
    }
  });
  await waitFor(() => ready, 20000, "unix datagram receiver");
  return { messages };
}

describe("syslog to a unix DATAGRAM socket (via logger(1))", { skip: DGRAM_SKIP }, () => {
  test("--syslog PATH: RFC 5424 from logger, our PRI, PID and message", async () => {
    const sockPath = path.join(tmp, "dgram.sock");
    const server = await unixDgramServer(sockPath);
    const proc = cli(["--syslog", sockPath]);
    await session(await proc.port());
    const texts = () => server.messages.map((m) => m.toString("utf8"));
    await waitFor(() => texts().some((t) => t.includes(": closed ")), 5000, "close datagram");
    for (const text of texts()) {
      const time = rfc5424Time(text, proc.child.pid);
      assert.match(time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/, "logger's UTC time");
    }
    assert.equal(RFC5424.exec(texts()[0]!)![6], "WebSocket server settings:");
    assert.equal(await within(10000, proc.kill("SIGTERM"), "exit"), 0);
    await waitFor(() => texts().some((t) => t.endsWith(" - - Got SIGTERM, closing 0 session(s)")));
  });

  test("--legacy-syslog PATH: RFC 3164 from logger", async () => {
    const sockPath = path.join(tmp, "dgram3164.sock");
    const server = await unixDgramServer(sockPath);
    const proc = cli(["--syslog", sockPath, "--legacy-syslog"]);
    await proc.port();
    await waitFor(() => server.messages.some((m) => m.includes("proxying from")), 5000, "banner");
    const first = server.messages[0]!.toString("utf8");
    const header =
      `^<14>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d \\S+ websockify\\[${proc.child.pid}\\]: `;
    assert.match(first, new RegExp(`${header}WebSocket server settings:$`));
  });

  test("the sink passes levels and the BOM through, and reaches a late server", async () => {
    const sockPath = path.join(tmp, "late.sock");
    const sink = createSyslogSink({ kind: "unix", path: sockPath }, { legacy: false, facility: 3 });
    cleanups.push(() => sink.close());
    sink.send("info", "before the server"); // no socket yet: logger keeps retrying
    const server = await unixDgramServer(sockPath);
    sink.send("error", "ünï\ncode");
    sink.send("warn", "w");
    // The first line is lost, or arrives first if logger(1) started after the server did.
    const later = () =>
      server.messages.map((m) => RFC5424.exec(m.toString("latin1")))
        .filter((m) => !m?.[6]?.endsWith("before the server"));
    await waitFor(() => later().length >= 2, 5000, "datagrams");
    const [a, b] = later();
    assert.equal(a![1], "27");
    assert.deepEqual(
      [...Buffer.from(a![6]!, "latin1")],
      [0xef, 0xbb, 0xbf, ...Buffer.from("ünï code")],
    );
    assert.equal(b![1], "28");
    assert.equal(b![5], String(process.pid));
  });
});

/**
 * `--allow-target`: the rules as tables (parsing, names and wildcards, IPv4
 * and IPv6 networks, port ranges, unix directories), then over real sockets:
 * token targets refused with 403 and a log line naming them, allowed ones
 * proxied, a name that resolves to a refused address refused, a name pinned
 * to the address that was checked (TLS still verified by name), and the CLI.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, test } from "node:test";
import { createLogger, type TokenPlugin, websockify, type WebsockifyOptions } from "../mod.ts";
import { defaultConnect } from "../adapters/connect/connect.ts";
import {
  allowsAddress,
  allowsName,
  allowsPath,
  checkTarget,
  parseTargetRules,
} from "../lib/plugins/target_rules.ts";
import { tokenLabel } from "../lib/log.ts";
import type { Target } from "../lib/types.ts";
import { makeCerts } from "./_certs.ts";
import { upgradeStatus } from "./_frames.ts";
import {
  closed,
  openClient,
  pattern,
  receive,
  runCli,
  spawnCli,
  startEchoServer,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";

describe("parseTargetRules()", () => {
  test("good rules", () => {
    const good: [string, unknown][] = [
      ["vnc.example", { kind: "name", name: "vnc.example", wildcard: false, low: 1, high: 65535 }],
      ["*.VNC.example.:5900", {
        kind: "name",
        name: "vnc.example",
        wildcard: true,
        low: 5900,
        high: 5900,
      }],
      ["localhost:5900-5999", {
        kind: "name",
        name: "localhost",
        wildcard: false,
        low: 5900,
        high: 5999,
      }],
      ["10.0.0.0/8", {
        kind: "ip",
        bytes: new Uint8Array([10, 0, 0, 0]),
        prefix: 8,
        low: 1,
        high: 65535,
      }],
      ["10.1.2.3:22", {
        kind: "ip",
        bytes: new Uint8Array([10, 1, 2, 3]),
        prefix: 32,
        low: 22,
        high: 22,
      }],
      ["unix:/run/vnc", { kind: "unix", dir: "/run/vnc/" }],
      ["unix:/run//vnc/./x/../", { kind: "unix", dir: "/run/vnc/" }],
      ["unix:/", { kind: "unix", dir: "/" }],
    ];
    for (const [text, want] of good) assert.deepEqual(parseTargetRules(text), [want], text);
    const v6 = parseTargetRules("::1, fd00::/8, [2001:db8::/32]:5900-5901, [::1]:22");
    assert.deepEqual(v6.map((r) => r.kind === "ip" && [r.prefix, r.low, r.high]), [
      [128, 1, 65535],
      [8, 1, 65535],
      [32, 5900, 5901],
      [128, 22, 22],
    ]);
  });

  test("bad rules are usage errors", () => {
    const bad = [
      "",
      "*",
      "*.",
      "a.*.example",
      "exa mple",
      "10.0.0.0/33",
      "::1/129",
      "10.0.0.0/",
      "host:0",
      "host:70000",
      "host:5901-5900",
      "host:x",
      "[::1",
      "[10.0.0.1]",
      "[::1]5900",
      "unix:run/vnc",
      "unix:",
      "1.2.3.4::",
      "1::2::3",
      "a..b",
      "-a.example",
      "http://x",
    ];
    for (const text of bad) {
      assert.throws(() => parseTargetRules(text), { name: "UsageError" }, JSON.stringify(text));
    }
    assert.throws(() => parseTargetRules("ok.example,bad rule"), /cannot parse rule 'bad rule'/);
  });
});

describe("matching", () => {
  const rules = parseTargetRules(
    "*.example.com:5900-5999,vnc.test,10.0.0.0/8:5900,192.168.1.7," +
      "[2001:db8::/32]:5900-5901,fe80::/10,unix:/run/vnc/",
  );
  test("names and wildcards", () => {
    const cases: [string, number, boolean][] = [
      ["a.example.com", 5900, true],
      ["A.B.Example.COM.", 5999, true],
      ["a.example.com", 6000, false],
      ["example.com", 5900, false],
      ["evilexample.com", 5900, false],
      ["a.example.com.evil", 5900, false],
      ["vnc.test", 1, true],
      ["x.vnc.test", 1, false],
    ];
    for (const [name, port, want] of cases) {
      assert.equal(allowsName(rules, name, port), want, `${name}:${port}`);
    }
  });

  test("IPv4 and IPv6 addresses, networks and port ranges", () => {
    const cases: [string, number, boolean][] = [
      ["10.1.2.3", 5900, true],
      ["10.1.2.3", 5901, false],
      ["11.0.0.1", 5900, false],
      ["::ffff:10.9.9.9", 5900, true], // reaches 10.9.9.9
      ["192.168.1.7", 80, true],
      ["192.168.1.8", 80, false],
      ["2001:db8:ffff::1", 5901, true],
      ["2001:0db8:0:0:0:0:0:1", 5900, true],
      ["2001:db9::1", 5900, false],
      ["2001:db8::1", 5902, false],
      ["fe80::1", 22, true],
      ["febf:ffff::1", 22, true],
      ["fec0::1", 22, false],
      ["::1", 5900, false],
      ["vnc.test", 1, false], // a name is no address
    ];
    for (const [address, port, want] of cases) {
      assert.equal(allowsAddress(rules, address, port), want, `${address}:${port}`);
    }
  });

  test("unix paths stay under the directory", () => {
    const cases: [string, boolean][] = [
      ["/run/vnc/vm1.sock", true],
      ["/run/vnc/sub/vm1.sock", true],
      ["/run//vnc/./vm1.sock", true],
      ["/run/vnc/../vm1.sock", false],
      ["/run/vnc/sub/../../etc/x.sock", false],
      ["/run/vncx/vm1.sock", false],
      ["/run/vnc", false],
      ["/run/vnc/", false],
      ["run/vnc/vm1.sock", false],
    ];
    for (const [file, want] of cases) assert.equal(allowsPath(rules, file), want, file);
  });

  test("an IPv4-mapped network is the IPv4 network it maps (lib/net/cidr.ts)", () => {
    const mapped = parseTargetRules("[::ffff:192.0.2.0/120]:5900,[::/0]:22");
    const cases: [string, number, boolean][] = [
      ["192.0.2.9", 5900, true],
      ["::ffff:192.0.2.9", 5900, true],
      ["192.0.3.9", 5900, false],
      ["2001:db8::1", 22, true],
      // An IPv6 network shorter than the mapped range reaches no IPv4 address.
      ["192.0.2.9", 22, false],
      ["::ffff:192.0.2.9", 22, false],
    ];
    for (const [address, port, want] of cases) {
      assert.equal(allowsAddress(mapped, address, port), want, `${address}:${port}`);
    }
  });
});

let tmp: string;
let echo: TcpServer;
let echo6: TcpServer;
let unixEcho: net.Server;
let sockets: string;

before(async () => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-allow-")));
  sockets = path.join(tmp, "sockets");
  fs.mkdirSync(sockets);
  echo = await startEchoServer();
  echo6 = await startEchoServer("::1");
  unixEcho = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on("error", () => {});
    sock.pipe(sock);
  });
  await new Promise<void>((resolve) => unixEcho.listen(path.join(sockets, "vm.sock"), resolve));
});
after(async () => {
  await echo.close();
  await echo6.close();
  await new Promise<void>((resolve) => unixEcho.close(() => resolve()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A token plugin over a table: token → target. */
const table = (targets: Record<string, Target>): TokenPlugin => ({
  lookup: (token) => targets[token],
});
const tcp = (hostname: string, port: number, tls?: boolean): Target => ({
  kind: "tcp",
  hostname,
  port,
  ...(tls ? { tls } : {}),
});

/** A proxy with `options`, its log lines (JSON), and a cleanup. */
async function proxyWith(options: Partial<WebsockifyOptions>) {
  const lines: string[] = [];
  const proxy = await websockify({
    listen: { hostname: "127.0.0.1", port: 0 },
    logger: createLogger({ write: (line) => lines.push(line), format: "json" }),
    ...options,
  });
  return { port: proxy.addr.port, lines, close: () => proxy.close() };
}

/** Bytes go through a session for `token` and come back. */
async function echoes(port: number, token: string): Promise<void> {
  const ws = await within(
    5000,
    openClient(port, ["binary"], "127.0.0.1", `/?token=${token}`),
    "open",
  );
  try {
    const data = pattern(2000);
    const got = receive(ws, data.length);
    ws.send(data);
    assert.deepEqual(await within(5000, got, `echo through ${token}`), data);
  } finally {
    ws.close();
    await within(5000, closed(ws), "close");
  }
}

const status = (port: number, token: string) =>
  within(5000, upgradeStatus(port, `/?token=${encodeURIComponent(token)}`), "handshake");

/** The refusal line for `target`, as JSON. */
function refusal(lines: string[], target: string): Record<string, unknown> {
  const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const entry = entries.find((e) => e.event === "refuse" && e.target === target);
  return entry ?? assert.fail(`no refusal naming ${target} in\n${lines.join("\n")}`);
}

describe("--allow-target over real sockets", () => {
  test("an IP rule allows its address and refuses others with 403 and a log line", async () => {
    const p = await proxyWith({
      tokenPlugin: table({ ok: tcp("127.0.0.1", echo.port), other: tcp("127.0.0.2", echo.port) }),
      allowTarget: "127.0.0.1",
    });
    try {
      await echoes(p.port, "ok");
      assert.equal(await status(p.port, "other"), 403);
      const line = refusal(p.lines, `127.0.0.2:${echo.port}`);
      assert.equal(line.status, 403);
      assert.equal(line.token, tokenLabel("other"));
      assert.match(String(line.msg), /Target 127\.0\.0\.2:\d+ not allowed by --allow-target/);
    } finally {
      await p.close();
    }
  });

  test("CIDRs with port ranges", async () => {
    const port = echo.port;
    const p = await proxyWith({
      tokenPlugin: table({ in: tcp("127.0.0.1", port), out: tcp("127.0.0.1", port + 1) }),
      allowTarget: `10.0.0.0/8,127.0.0.0/8:${port - 1}-${port}`,
    });
    try {
      await echoes(p.port, "in");
      assert.equal(await status(p.port, "out"), 403);
      refusal(p.lines, `127.0.0.1:${port + 1}`);
    } finally {
      await p.close();
    }
  });

  test("IPv6 networks", async () => {
    const p = await proxyWith({
      tokenPlugin: table({
        v6: tcp("::1", echo6.port),
        mapped: tcp("::ffff:127.0.0.1", echo.port),
      }),
      allowTarget: `[::/64]:${echo6.port},fd00::/8`,
    });
    try {
      await echoes(p.port, "v6");
      assert.equal(await status(p.port, "mapped"), 403); // that is 127.0.0.1
      refusal(p.lines, `[::ffff:127.0.0.1]:${echo.port}`);
    } finally {
      await p.close();
    }
    const narrow = await proxyWith({
      tokenPlugin: table({ v6: tcp("::1", echo6.port) }),
      allowTarget: "fd00::/8",
    });
    try {
      assert.equal(await status(narrow.port, "v6"), 403);
    } finally {
      await narrow.close();
    }
  });

  test("host names by name, and wildcards below a domain only", async () => {
    const p = await proxyWith({
      tokenPlugin: table({
        name: tcp("localhost", echo.port),
        below: tcp("vm1.example.invalid", 5900),
        apex: tcp("example.invalid", 5900),
        lookalike: tcp("evilexample.invalid", 5900),
        port: tcp("vm1.example.invalid", 5901),
      }),
      allowTarget: `localhost:${echo.port},*.example.invalid:5900`,
    });
    try {
      await echoes(p.port, "name");
      // Allowed, so 101 (the session then fails to connect: the name does not exist).
      assert.equal(await status(p.port, "below"), 101);
      for (const token of ["apex", "lookalike", "port"]) {
        assert.equal(await status(p.port, token), 403, token);
      }
      refusal(p.lines, "evilexample.invalid:5900");
      refusal(p.lines, "vm1.example.invalid:5901");
    } finally {
      await p.close();
    }
  });

  test("a name is checked by the address it resolves to, and connected there", async () => {
    const p = await proxyWith({
      tokenPlugin: table({ vm: tcp("localhost", echo.port) }),
      allowTarget: "127.0.0.0/8",
    });
    try {
      await echoes(p.port, "vm");
    } finally {
      await p.close();
    }
    const refused = await proxyWith({
      tokenPlugin: table({ vm: tcp("localhost", echo.port), none: tcp("nx.invalid", 5900) }),
      allowTarget: "10.0.0.0/8,[fd00::/8]",
    });
    try {
      assert.equal(await status(refused.port, "vm"), 403);
      const line = refusal(refused.lines, `localhost:${echo.port}`);
      assert.match(
        String(line.msg),
        /localhost:\d+ \(resolves to [^)]*127\.0\.0\.1[^)]*\) not allowed/,
      );
      assert.equal(await status(refused.port, "none"), 403);
      assert.match(String(refusal(refused.lines, "nx.invalid:5900").msg), /name lookup failed/);
    } finally {
      await refused.close();
    }
  });

  test("checkTarget() pins a name to the first address a rule allows", async () => {
    const rules = parseTargetRules("10.0.0.0/8:5900,vnc.test");
    const vm = tcp("vm.example", 5900);
    const seen = () => Promise.resolve(["192.0.2.1", "10.0.0.7", "10.0.0.8"]);
    assert.deepEqual(await checkTarget(rules, vm, seen), { ...vm, address: "10.0.0.7" });
    assert.equal(await checkTarget(rules, tcp("vm.example", 5901), seen), undefined);
    // Allowed by name: connected by name, never resolved here.
    const never = () => Promise.reject(new Error("resolved"));
    assert.deepEqual(await checkTarget(rules, tcp("vnc.test", 1), never), tcp("vnc.test", 1));
  });

  test("the connector goes to the checked address, not to the name again", async () => {
    // A name that resolves nowhere: only the address can reach the echo server.
    const conn = await within(
      5000,
      defaultConnect()({
        kind: "tcp",
        hostname: "nx.invalid",
        port: echo.port,
        address: "127.0.0.1",
      }),
      "connect",
    );
    try {
      const writer = conn.writable.getWriter();
      const reader = conn.readable.getReader();
      await writer.write(new Uint8Array([1, 2, 3]));
      const { value } = await within(5000, reader.read(), "echo");
      assert.deepEqual([...value!], [1, 2, 3]);
      reader.releaseLock();
      writer.releaseLock();
    } finally {
      conn.close();
    }
  });

  test("a TLS target pinned to its checked address is still verified by name", async () => {
    const certs = makeCerts();
    // The certificate names only DNS:localhost: verifying against 127.0.0.1 would fail.
    const target = tls.createServer({
      cert: fs.readFileSync(certs.nameOnlyCert),
      key: fs.readFileSync(certs.nameOnlyKey),
    }, (sock) => sock.pipe(sock));
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    const port = (target.address() as net.AddressInfo).port;
    const p = await proxyWith({
      tokenPlugin: table({ vm: tcp("localhost", port, true) }),
      allowTarget: "127.0.0.1",
      targetCa: fs.readFileSync(certs.ca, "utf8"),
    });
    try {
      await echoes(p.port, "vm");
    } finally {
      await p.close();
      await new Promise<void>((r) => target.close(() => r()));
      certs.remove();
    }
  });

  test("unix sockets under an allowed directory only", async () => {
    const vm = path.join(sockets, "vm.sock");
    const p = await proxyWith({
      tokenPlugin: table({
        vm: { kind: "unix", path: vm },
        dots: { kind: "unix", path: `${sockets}/../sockets/vm.sock` },
        escape: { kind: "unix", path: `${sockets}/../vm.sock` },
        sibling: { kind: "unix", path: `${sockets}x/vm.sock` },
      }),
      allowTarget: `unix:${sockets}/`,
    });
    try {
      await echoes(p.port, "vm");
      await echoes(p.port, "dots");
      for (const token of ["escape", "sibling"]) {
        assert.equal(await status(p.port, token), 403, token);
      }
      refusal(p.lines, `unix socket ${sockets}/../vm.sock`);
    } finally {
      await p.close();
    }
  });

  test("a fixed target with allowTarget is an error", async () => {
    await assert.rejects(
      websockify({ target: `127.0.0.1:${echo.port}`, allowTarget: "127.0.0.1" }),
      /allowTarget needs a tokenPlugin/,
    );
  });
});

describe("--allow-target on the command line", () => {
  test("UnixDomainSocketDirectory and TokenFile targets, refused ones logged", async () => {
    const tokens = path.join(tmp, "tokens.cfg");
    fs.writeFileSync(tokens, `ok: 127.0.0.1:${echo.port}\nfar: 127.0.0.3:${echo.port}\n`);
    const runs: [string[], string, string][] = [
      [
        ["--token-plugin=TokenFile", `--token-source=${tokens}`, "--allow-target=127.0.0.1"],
        "ok",
        "far",
      ],
      [
        [
          "--token-plugin=UnixDomainSocketDirectory",
          `--token-source=${sockets}`,
          "--allow-target=unix:/nowhere/",
        ],
        "",
        "vm.sock",
      ],
    ];
    for (const [args, good, bad] of runs) {
      const proc = spawnCli([...args, "127.0.0.1:0"]);
      try {
        const port = await proc.port();
        if (good) await echoes(port, good);
        assert.equal(await status(port, bad), 403);
        await waitFor(
          () => /Target .* not allowed by --allow-target/.test(proc.stderr),
          5000,
          "log line",
        );
        const line = proc.stderr.split("\n").find((l) => l.includes("not allowed"))!;
        assert.ok(
          line.includes(bad === "far" ? `127.0.0.3:${echo.port}` : `${sockets}/vm.sock`),
          line,
        );
      } finally {
        await proc.kill("SIGKILL");
      }
    }
  });

  test("a bad rule, or no token plugin, is a one-line usage error, exit 2", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["--token-plugin=TokenFile", "--token-source=x", "--allow-target=10.0.0.0/33"],
        /cannot parse rule '10\.0\.0\.0\/33'/,
      ],
      [
        ["--allow-target=10.0.0.0/8", "127.0.0.1:0", "127.0.0.1:5900"],
        /--token-plugin to use --allow-target/,
      ],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await runCli(
        args[args.length - 1]!.includes(":5900") ? args : [...args, "127.0.0.1:0"],
      );
      assert.equal(code, 2, stderr);
      const errors = stderr.split("\n").filter((l) => l.startsWith("websockify: error:"));
      assert.equal(errors.length, 1, stderr);
      assert.match(errors[0]!, message);
    }
  });
});

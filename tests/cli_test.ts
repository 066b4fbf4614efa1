/**
 * The command line: argument parsing as a table, then the real `websockify`
 * process under the current runtime: help, usage errors, startup errors and
 * a clean exit on SIGTERM.
 */
import assert from "node:assert/strict";
import net from "node:net";
import process from "node:process";
import { describe, test } from "node:test";
import { type CliOptions, HELP, OPTIONS, parseCliArgs, USAGE } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import {
  assertStartError,
  closed,
  httpGet,
  openClient,
  receive,
  ROOT,
  runCli,
  spawnCli,
  spawnCommand,
  startEchoServer,
  startTcpServer,
  waitFor,
  which,
  within,
} from "./_harness.ts";

/** The settings a bare `LISTEN TARGET` command line gives. */
const NO_TLS = {
  cert: undefined,
  key: undefined,
  passphrase: undefined,
  minVersion: undefined,
  ciphers: undefined,
  verifyClient: false,
  ca: undefined,
  sslOnly: false,
  targetCa: undefined,
};
const LIFECYCLE = {
  wrap: undefined,
  record: undefined,
  daemon: false,
  pidFile: undefined,
  runOnce: false,
  timeout: 0,
  idleTimeout: 0,
  drainTimeout: 0,
  logFile: undefined,
  syslog: undefined,
  legacySyslog: false,
  inetd: false,
  activated: false,
  libserver: false,
  workers: 1,
  unixListen: undefined,
};
const NO_LIMITS = {
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  maxConnectionsPerToken: 0,
  rateLimit: 0,
  maxSessionDuration: 0,
  sessionIdleTimeout: 0,
  allowClient: undefined,
} as const;

const DEFAULTS = {
  help: false,
  verbose: false,
  logFormat: "text",
  traffic: false,
  preferIpv6: false,
  heartbeat: 0,
  handshakeTimeout: 10,
  tls: NO_TLS,
  web: undefined,
  fileOnly: false,
  tokenPlugin: undefined,
  tokenFrom: undefined,
  allowTarget: undefined,
  trustedProxy: undefined,
  proxyProtocol: false,
  targetProxyProtocol: false,
  authPlugin: undefined,
  webAuth: false,
  sslTarget: false,
  lifecycle: LIFECYCLE,
  admission: NO_LIMITS,
} as const;

const PARSES: [string[], CliOptions][] = [
  [["6080", "localhost:5900"], {
    ...DEFAULTS,
    listen: { hostname: "", port: 6080 },
    target: { kind: "tcp", hostname: "localhost", port: 5900 },
  }],
  [["127.0.0.1:6080", "10.0.0.1:5900"], {
    ...DEFAULTS,
    listen: { hostname: "127.0.0.1", port: 6080 },
    target: { kind: "tcp", hostname: "10.0.0.1", port: 5900 },
  }],
  [["[::1]:6080", "[::1]:5900"], {
    ...DEFAULTS,
    listen: { hostname: "::1", port: 6080 },
    target: { kind: "tcp", hostname: "::1", port: 5900 },
  }],
  [["::1:6080", "h:1"], {
    ...DEFAULTS,
    listen: { hostname: "::1", port: 6080 },
    target: { kind: "tcp", hostname: "h", port: 1 },
  }],
  [["--unix-target=/tmp/vnc.sock", "6080"], {
    ...DEFAULTS,
    listen: { hostname: "", port: 6080 },
    target: { kind: "unix", path: "/tmp/vnc.sock" },
  }],
  [["-6", "-v", "--traffic", "--heartbeat=5", "6080", "h:5900"], {
    ...DEFAULTS,
    verbose: true,
    traffic: true,
    preferIpv6: true,
    heartbeat: 5,
    listen: { hostname: "", port: 6080 },
    target: { kind: "tcp", hostname: "h", port: 5900 },
  }],
  [[
    "--max-connections=100",
    "--max-connections-per-ip=4",
    "--max-connections-per-token=1",
    "--rate-limit=30",
    "--max-session-duration=28800",
    "--session-idle-timeout=900",
    "--allow-client=10.0.0.0/8, fd00::/8",
    "6080",
    "h:5900",
  ], {
    ...DEFAULTS,
    listen: { hostname: "", port: 6080 },
    target: { kind: "tcp", hostname: "h", port: 5900 },
    admission: {
      maxConnections: 100,
      maxConnectionsPerIp: 4,
      maxConnectionsPerToken: 1,
      rateLimit: 30,
      maxSessionDuration: 28800,
      sessionIdleTimeout: 900,
      allowClient: ["10.0.0.0/8", "fd00::/8"],
    },
  }],
  [["--handshake-timeout=0", "6080", "h:5900"], {
    ...DEFAULTS,
    listen: { hostname: "", port: 6080 },
    target: { kind: "tcp", hostname: "h", port: 5900 },
    handshakeTimeout: 0,
  }],
  [["6080", "--heartbeat", "7", "--prefer-ipv6", "--verbose", "h:5900"], {
    ...DEFAULTS,
    verbose: true,
    preferIpv6: true,
    heartbeat: 7,
    listen: { hostname: "", port: 6080 },
    target: { kind: "tcp", hostname: "h", port: 5900 },
  }],
  [[
    "--cert=c.pem",
    "--key=k.pem",
    "--key-password=pw",
    "--ssl-only",
    "--ssl-version=tlsv1_2",
    "--ssl-ciphers=HIGH",
    "--verify-client",
    "--cafile=ca.pem",
    "6080",
    "h:5900",
  ], {
    ...DEFAULTS,
    tls: {
      cert: "c.pem",
      key: "k.pem",
      passphrase: "pw",
      minVersion: "TLSv1.2",
      ciphers: "HIGH",
      verifyClient: true,
      ca: "ca.pem",
      sslOnly: true,
      targetCa: undefined,
    },
    listen: { hostname: "", port: 6080 },
    target: { kind: "tcp", hostname: "h", port: 5900 },
  }],
  [["--ssl-target", "--ssl-target-cafile=t.pem", "6080", "h:443"], {
    ...DEFAULTS,
    tls: { ...NO_TLS, targetCa: "t.pem" },
    sslTarget: true,
    listen: { hostname: "", port: 6080 },
    target: { kind: "tcp", hostname: "h", port: 443, tls: true },
  }],
  [["6080", "--wrap-mode=respawn", "--", "vncserver", "-geometry", "800x600", "--x"], {
    ...DEFAULTS,
    listen: { hostname: "", port: 6080 },
    target: undefined,
    lifecycle: {
      ...LIFECYCLE,
      wrap: { command: ["vncserver", "-geometry", "800x600", "--x"], mode: "respawn" },
    },
  }],
  [["--inetd", "h:5900"], {
    ...DEFAULTS,
    listen: undefined,
    target: { kind: "tcp", hostname: "h", port: 5900 },
    lifecycle: { ...LIFECYCLE, inetd: true },
  }],
  [["--unix-listen=/run/ws.sock", "--unix-listen-mode=666", "h:5900"], {
    ...DEFAULTS,
    listen: undefined,
    target: { kind: "tcp", hostname: "h", port: 5900 },
    lifecycle: { ...LIFECYCLE, unixListen: { path: "/run/ws.sock", mode: 0o666 } },
  }],
  [[
    "-D",
    "--pid-file=/run/ws.pid",
    "--run-once",
    "--timeout=30",
    "--idle-timeout=5",
    "--drain-timeout=2.5",
    "--record=/tmp/rec",
    "--log-file=/var/log/ws.log",
    "--syslog=/dev/log",
    "--legacy-syslog",
    "6080",
    "h:5900",
  ], {
    ...DEFAULTS,
    listen: { hostname: "", port: 6080 },
    target: { kind: "tcp", hostname: "h", port: 5900 },
    lifecycle: {
      ...LIFECYCLE,
      daemon: true,
      pidFile: "/run/ws.pid",
      runOnce: true,
      timeout: 30,
      idleTimeout: 5,
      drainTimeout: 2.5,
      record: "/tmp/rec",
      logFile: "/var/log/ws.log",
      syslog: "/dev/log",
      legacySyslog: true,
    },
  }],
  [["--help"], { help: true }],
  [["-h", "6080"], { help: true }],
];

const ERRORS: [string[], string][] = [
  [[], "Too few arguments"],
  [["6080"], "Too few arguments"],
  [["6080", "h:1", "extra"], "Too many arguments"],
  [["--unix-target=/tmp/s", "6080", "h:1"], "Too many arguments"],
  [["60x0", "h:1"], "Error parsing listen port"],
  [["70000", "h:1"], "Error parsing listen port"],
  [["6080", "h"], "Error parsing target"],
  [["6080", "h:0"], "Error parsing target port"],
  [["--ssl-version=sslv3", "6080", "h:1"], "option --ssl-version: invalid choice: 'sslv3'"],
  [["--ssl-target", "--unix-target=/s", "6080"], "--ssl-target needs a TCP target"],
  [["6080", "h:1", "--"], "No program after --"],
  [["6080", "h:1", "--", "prog"], "Too many arguments"],
  [["--wrap-mode=sometimes", "6080", "--", "p"], "option --wrap-mode: invalid choice: 'sometimes'"],
  [["--unix-listen=/s", "--", "p"], "Wrap mode cannot be used with --unix-listen"],
  [["--unix-listen=/s", "--unix-listen-mode=9", "h:1"], "Error parsing listen unix socket mode"],
  [["--legacy-syslog", "6080", "h:1"], "You must use --syslog to use --legacy-syslog"],
  [["--workers=0", "6080", "h:1"], "option --workers: must be at least 1"],
  [["--workers=2", "6080", "--", "prog"], "--workers cannot be used with wrap mode"],
  [["--workers=2", "--inetd", "h:1"], "--workers cannot be used with --inetd"],
  [["--timeout=soon", "6080", "h:1"], "option --timeout: invalid integer value: 'soon'"],
  [
    ["--drain-timeout=-1", "6080", "h:1"],
    "option --drain-timeout: invalid non-negative number: '-1'",
  ],
  [["--drain-timeout=", "6080", "h:1"], "option --drain-timeout: invalid non-negative number: ''"],
  [["6080", "h:port"], "Error parsing target port"],
  [["6080", ":5900"], "Error parsing target port"],
  [["--bogus", "6080", "h:1"], "no such option: --bogus"],
  [["-x", "6080", "h:1"], "no such option: -x"],
  [["--heartbeat=x", "6080", "h:1"], "option --heartbeat: invalid integer value: 'x'"],
  [["--heartbeat=-1", "6080", "h:1"], "option --heartbeat: invalid integer value: '-1'"],
  [["6080", "h:1", "--heartbeat"], "--heartbeat option requires 1 argument"],
  [
    ["--handshake-timeout=1.5", "6080", "h:1"],
    "option --handshake-timeout: invalid integer value: '1.5'",
  ],
  [["--traffic=yes", "6080", "h:1"], "--traffic option does not take a value"],
];

describe("parseCliArgs()", () => {
  for (const [args, want] of PARSES) {
    test(`parseCliArgs() parses ${JSON.stringify(args)}`, () => {
      assert.deepEqual(parseCliArgs(args), want);
    });
  }
  for (const [args, message] of ERRORS) {
    test(`parseCliArgs() rejects ${JSON.stringify(args)} with "${message}"`, () => {
      assert.throws(() => parseCliArgs(args), (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.equal(error.message, message);
        return true;
      });
    });
  }
});

/** What cannot be combined with a socket passed by systemd. */
const ACTIVATION_ERRORS: [string[], string][] = [
  [["--inetd", "h:1"], "--inetd cannot be used with socket activation"],
  [["--unix-listen=/run/ws.sock", "h:1"], "--unix-listen cannot be used with socket activation"],
  [["-D", "h:1"], "--daemon cannot be used with socket activation"],
  [["--workers=2", "h:1"], "--workers cannot be used with socket activation"],
];

describe("parseCliArgs() under systemd socket activation", () => {
  test("takes no listen address, only the target", () => {
    assert.deepEqual(parseCliArgs(["h:5900"], true), {
      ...DEFAULTS,
      listen: undefined,
      target: { kind: "tcp", hostname: "h", port: 5900 },
      lifecycle: { ...LIFECYCLE, activated: true },
    });
  });
  for (const [args, message] of ACTIVATION_ERRORS) {
    test(`rejects ${JSON.stringify(args)} with "${message}"`, () => {
      assert.throws(() => parseCliArgs(args, true), { name: "UsageError", message });
    });
  }
});

/** The flags of every option the parser knows, as `--help` must show them. */
function flags(): string[] {
  return Object.entries(OPTIONS).flatMap(([name, spec]) => [
    `--${name}`,
    ...("short" in spec ? [`-${spec.short}`] : []),
  ]);
}

/** Asserts the usage-error shape: usage, one error line, no stack, exit 2. */
function assertUsageError(result: { code: number; stderr: string }, message: RegExp): void {
  assert.equal(result.code, 2, result.stderr);
  assert.ok(result.stderr.startsWith(USAGE), result.stderr);
  const errors = result.stderr.split("\n").filter((l) => l.startsWith("websockify: error: "));
  assert.equal(errors.length, 1, result.stderr);
  assert.match(errors[0]!, message);
  assert.doesNotMatch(result.stderr, /^\s+at /m);
}

describe("websockify command", { timeout: 60000 }, () => {
  test("HELP lists every option of the parser", () => {
    for (const flag of flags()) assert.ok(HELP.includes(flag), `${flag} missing from HELP`);
  });

  test("websockify --help prints every option and exits 0", { timeout: 30000 }, async () => {
    const result = await runCli(["--help"]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stdout.startsWith(USAGE), result.stdout);
    for (const flag of flags()) assert.ok(result.stdout.includes(flag), `${flag} missing`);
    assert.equal(result.stderr, "");
  });

  test("websockify with an unknown option prints usage and exits 2", async () => {
    assertUsageError(await runCli(["--bogus", "6080", "h:1"]), /no such option: --bogus$/);
  });

  test("websockify with too few arguments prints usage and exits 2", async () => {
    assertUsageError(await runCli(["6080"]), /Too few arguments$/);
  });

  test("websockify with a bad listen port exits 2", async () => {
    assertUsageError(await runCli(["127.0.0.1:99999", "h:1"]), /Error parsing listen port$/);
  });

  test("websockify on a port in use says so in one line and exits 1", async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = holder.address() as net.AddressInfo;
      const result = await runCli([`127.0.0.1:${port}`, "127.0.0.1:5900"]);
      assertStartError(result, /address already in use/);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  test("websockify with an unresolvable target host exits 1", async () => {
    const result = await runCli(["127.0.0.1:0", "nonexistent.invalid:5900"]);
    assertStartError(result, /nonexistent\.invalid/);
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`websockify closes clients with 1001 and exits 0 on ${signal}`, async () => {
      const echo = await startEchoServer();
      const proc = spawnCli(["127.0.0.1:0", `127.0.0.1:${echo.port}`]);
      try {
        const ws = await openClient(await proc.port(), ["binary"]);
        // An echo proves the session reached the target before the signal.
        const got = receive(ws, 5);
        ws.send(new TextEncoder().encode("hello"));
        await within(5000, got, "echo");
        const closing = closed(ws);
        // Not proc.kill(): Deno's child.kill() makes "exit" report the signal
        // instead of the real exit status.
        process.kill(proc.child.pid!, signal);
        const code = await within(8000, proc.exited, `exit after ${signal}`);
        assert.equal((await within(5000, closing, "client close")).code, 1001);
        assert.equal(code, 0, proc.stderr);
      } finally {
        await proc.kill("SIGKILL");
        await echo.close();
      }
    });
  }

  // Whichever runtime runs the suite: the probe is Node's, so the proxy is too.
  test("the Node proxy loads undici only for its first plain HTTP request", async () => {
    const node = which("node");
    assert.ok(node, "node is on the PATH");
    const echo = await startEchoServer();
    const probe = `${ROOT}tests/fixtures/undici_probe.cjs`;
    const cli = `${ROOT}cli.ts`;
    const proc = spawnCommand([
      ...[node, "--require", probe, "--import", "tsx", cli],
      ...["127.0.0.1:0", `127.0.0.1:${echo.port}`],
    ]);
    const loaded = async (): Promise<string> => {
      const seen = proc.stderr.length;
      process.kill(proc.child.pid!, "SIGUSR2");
      const answer = () => /undici loaded: (\w+)/.exec(proc.stderr.slice(seen))?.[1];
      await waitFor(() => answer() !== undefined, 5000, "the probe's answer");
      return answer()!;
    };
    try {
      const port = await proc.port();
      const ws = await openClient(port, ["binary"]);
      const got = receive(ws, 5);
      ws.send(new TextEncoder().encode("hello"));
      await within(5000, got, "echo");
      ws.close();
      await within(5000, closed(ws), "client close");
      assert.equal(await loaded(), "false", proc.stderr);
      // The app still answers plain requests, loading the HTTP layer then.
      assert.equal((await httpGet(port, "/")).status, 405);
      assert.equal(await loaded(), "true", proc.stderr);
    } finally {
      await proc.kill("SIGKILL");
      await echo.close();
    }
  });

  test("websockify --traffic prints } per client chunk and { per target chunk", async () => {
    let targetSock: net.Socket | undefined;
    let fromClient = "";
    const target = await startTcpServer((sock) => {
      targetSock = sock;
      sock.setEncoding("utf8").on("data", (d: string) => (fromClient += d));
    });
    const proc = spawnCli(["--traffic", "127.0.0.1:0", `127.0.0.1:${target.port}`]);
    try {
      const ws = await openClient(await proc.port(), ["binary"]);
      const legend = "Traffic Legend:\n    } - Client receive\n    { - Target receive\n";
      const tokens = () => proc.stdout.startsWith(legend) ? proc.stdout.slice(legend.length) : "";
      // One chunk at a time, each waited for, so that the order of tokens is known.
      const steps: ["client" | "target", string][] = [
        ["client", "}"],
        ["target", "}{"],
        ["target", "}{{"],
        ["client", "}{{}"],
      ];
      for (const [i, [from, want]] of steps.entries()) {
        const text = `chunk ${i}`;
        if (from === "client") {
          const sent = fromClient.length + text.length;
          ws.send(new TextEncoder().encode(text));
          await waitFor(() => fromClient.length >= sent, 5000, `${text} at the target`);
        } else {
          const got = receive(ws, text.length);
          targetSock!.write(text);
          await within(5000, got, `${text} at the client`);
        }
        await waitFor(() => tokens().length >= want.length, 5000, `tokens ${want}`);
        assert.equal(tokens(), want, proc.stdout);
      }
      ws.close();
      await within(5000, closed(ws), "client close");
    } finally {
      await proc.kill("SIGKILL");
      await target.close();
    }
  });
});

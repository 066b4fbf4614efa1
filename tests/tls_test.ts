/**
 * TLS on the listening port (sniffed per connection), client certificates,
 * TLS versions, TLS to the target, the Flash policy answer and the
 * first-byte timeout.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import process from "node:process";
import tls from "node:tls";
import WebSocket from "ws";
import { createLogger, type Websockify } from "../mod.ts";
import { type Certs, makeCerts, servedFingerprint } from "./_certs.ts";
import { after, before, capability, describe, type SkipIf, test } from "./_skip.ts";
import {
  closed,
  receive,
  runCli,
  RUNTIME,
  sleep,
  spawnCli,
  startEchoServer,
  startProxy,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";

let certs: Certs;
let echo: TcpServer;
before(async () => {
  certs = makeCerts();
  echo = await startEchoServer();
});
after(async () => {
  await echo.close();
  certs.remove();
});

/** Opens a client over ws:// or wss:// with extra TLS options; rejects on failure. */
function connect(url: string, options: tls.ConnectionOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, ["binary"], { ...options, ca: fs.readFileSync(certs.ca) });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.once("close", () => reject(new Error("closed before open")));
  });
}

async function echoOnce(ws: WebSocket): Promise<void> {
  const got = receive(ws, 3);
  ws.send(new Uint8Array([7, 8, 9]));
  assert.deepEqual(await within(5000, got), new Uint8Array([7, 8, 9]));
  ws.close();
  await closed(ws);
}

/** Resolves with what the server sends before closing. */
function rawExchange(port: number, send: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: "127.0.0.1" });
    let text = "";
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => (text += d));
    sock.on("error", () => {});
    sock.on("close", () => resolve(text));
    sock.write(send);
  });
}

describe("same-port TLS", () => {
  let proxy: Websockify;
  const lines: string[] = [];
  before(async () => {
    proxy = await startProxy(`127.0.0.1:${echo.port}`, {
      tls: { cert: certs.combined },
      logger: createLogger({ write: (l) => lines.push(l) }),
    });
  });
  after(() => proxy.close());

  test("ws:// and wss:// both work on one port", async () => {
    const port = proxy.addr.port;
    await echoOnce(await connect(`ws://127.0.0.1:${port}/`));
    await echoOnce(await connect(`wss://localhost:${port}/`));
    assert.ok(lines.some((l) => l.includes("open (ws://")));
    assert.ok(lines.some((l) => l.includes("open (wss://")));
  });

  test("https requests are answered over TLS", async () => {
    const res = await new Promise<string>((resolve, reject) => {
      const sock = tls.connect({
        port: proxy.addr.port,
        host: "127.0.0.1",
        servername: "localhost",
        ca: fs.readFileSync(certs.ca),
      }, () => {
        sock.write("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
      });
      let text = "";
      sock.setEncoding("latin1");
      sock.on("data", (d: string) => (text += d));
      sock.on("end", () => resolve(text));
      sock.on("error", reject);
    });
    assert.match(res, /^HTTP\/1\.1 405 /);
  });

  test("a TLS error line names the connection and its client, on one line", async () => {
    const sock = net.connect({ port: proxy.addr.port, host: "127.0.0.1" });
    sock.on("error", () => {});
    await new Promise((r) => sock.once("connect", r));
    const client = `127.0.0.1:${sock.localPort}`;
    // A TLS record whose handshake message is nonsense.
    sock.write(Buffer.from([0x16, 3, 1, 0, 5, 0x68, 0x65, 0x6c, 0x6c, 0x6f]));
    await waitFor(() => lines.some((l) => l.includes(client)), 5000, lines.join("\n"));
    sock.destroy();
    const line = lines.find((l) => l.includes(client))!;
    assert.match(line, new RegExp(` #[1-9]\\d* ${client}: TLS error: \\S.*\\S$`));
    assert.ok(lines.every((l) => l.trim() !== "" && !l.includes("\n")), lines.join("|"));
  });

  test("a renewed certificate is picked up without a restart", async () => {
    const file = `${certs.dir}/renewed.pem`;
    const pair = (cert: string, key: string) => fs.readFileSync(cert) + "" + fs.readFileSync(key);
    fs.writeFileSync(file, pair(certs.cert, certs.key));
    const renewing = await startProxy(`127.0.0.1:${echo.port}`, { tls: { cert: file } });
    const seen = () => servedFingerprint(renewing.addr.port, certs.ca);
    try {
      const before = await seen();
      assert.equal(before, new crypto.X509Certificate(fs.readFileSync(certs.cert)).fingerprint256);
      fs.writeFileSync(file, pair(certs.nameOnlyCert, certs.nameOnlyKey));
      const renewed = new crypto.X509Certificate(fs.readFileSync(certs.nameOnlyCert));
      // Files are checked at most once a second, when a connection arrives.
      let now = before;
      for (let i = 0; i < 40 && now === before; i++) {
        await sleep(250);
        now = await seen();
      }
      assert.equal(now, renewed.fingerprint256);
      await echoOnce(await connect(`wss://localhost:${renewing.addr.port}/`));
    } finally {
      await renewing.close();
    }
  });

  test("a Flash policy request gets the policy and a close", async () => {
    const answer = await within(5000, rawExchange(proxy.addr.port, "<policy-file-request/>\0"));
    assert.equal(
      answer,
      '<cross-domain-policy><allow-access-from domain="*" to-ports="*" /></cross-domain-policy>\n',
    );
  });

  test("a client that sends nothing is dropped after the first-byte timeout", async () => {
    const started = Date.now();
    assert.equal(await within(8000, rawExchange(proxy.addr.port, "")), "");
    const waited = Date.now() - started;
    assert.ok(waited >= 2500 && waited < 6000, `closed after ${waited} ms`);
  });
});

describe("TLS options", () => {
  test("--ssl-only refuses plain clients and serves TLS ones", async () => {
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, {
      tls: { cert: certs.cert, key: certs.key },
      sslOnly: true,
    });
    try {
      await assert.rejects(connect(`ws://127.0.0.1:${proxy.addr.port}/`));
      await echoOnce(await connect(`wss://localhost:${proxy.addr.port}/`));
    } finally {
      await proxy.close();
    }
  });

  test("a minimum TLS version refuses older clients", async () => {
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, {
      tls: { cert: certs.combined, minVersion: "TLSv1.3" },
    });
    try {
      const url = `wss://localhost:${proxy.addr.port}/`;
      await assert.rejects(connect(url, { maxVersion: "TLSv1.2" }));
      await echoOnce(await connect(url, { minVersion: "TLSv1.3" }));
    } finally {
      await proxy.close();
    }
  });

  test("an encrypted key needs its password", async () => {
    const tlsOptions = { cert: certs.cert, key: certs.encryptedKey };
    await assert.rejects(
      startProxy(`127.0.0.1:${echo.port}`, { tls: tlsOptions }),
      /Cannot use key ".*enc\.key": wrong or missing password/,
    );
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, {
      tls: { ...tlsOptions, passphrase: "sesame" },
    });
    await echoOnce(await connect(`wss://localhost:${proxy.addr.port}/`));
    await proxy.close();
  });

  test("a missing certificate file fails at start-up", async () => {
    await assert.rejects(
      startProxy(`127.0.0.1:${echo.port}`, { tls: { cert: `${certs.dir}/nope.pem` } }),
      /Cannot read certificate ".*nope\.pem": ENOENT/,
    );
  });
});

describe("--ssl-ciphers", () => {
  const inList = "ECDHE-ECDSA-AES128-GCM-SHA256";
  const outside = "ECDHE-ECDSA-AES256-GCM-SHA384";
  const tlsOptions = () => ({ cert: certs.combined, ciphers: inList });

  // Deno's TLS cannot restrict ciphers: the option is refused there, not ignored.
  const onDeno: { skip: SkipIf } = {
    skip: RUNTIME === "deno" ? false : capability("Deno only: refuses the option"),
  };
  const notDeno: { skip: SkipIf } = {
    skip: RUNTIME === "deno" ? capability("Deno refuses the option") : false,
  };

  test("is refused at start-up on Deno", onDeno, async () => {
    await assert.rejects(
      startProxy(`127.0.0.1:${echo.port}`, { tls: tlsOptions() }),
      /cipher list \(--ssl-ciphers\) is not supported on Deno/,
    );
  });

  test(
    "a TLS 1.2 client with a cipher outside the list is refused, one inside connects",
    notDeno,
    async () => {
      const lines: string[] = [];
      const proxy = await startProxy(`127.0.0.1:${echo.port}`, {
        tls: tlsOptions(),
        logger: createLogger({ write: (l) => lines.push(l) }),
      });
      try {
        const url = `wss://localhost:${proxy.addr.port}/`;
        await assert.rejects(connect(url, { maxVersion: "TLSv1.2", ciphers: outside }));
        await waitFor(() => lines.some((l) => l.includes("TLS error:")));
        assert.match(
          lines.find((l) => l.includes("TLS error:"))!,
          / #1 127\.0\.0\.1:\d+: TLS error: no shared cipher$/,
        );
        await echoOnce(await connect(url, { maxVersion: "TLSv1.2", ciphers: inList }));
      } finally {
        await proxy.close();
      }
    },
  );

  test("TLS 1.3 suites are not restricted by the list, as upstream's", notDeno, async () => {
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, {
      tls: tlsOptions(),
    });
    try {
      const url = `wss://localhost:${proxy.addr.port}/`;
      await echoOnce(await connect(url, { minVersion: "TLSv1.3" }));
    } finally {
      await proxy.close();
    }
  });
});

describe("client certificates", () => {
  let proxy: Websockify;
  const lines: string[] = [];
  before(async () => {
    proxy = await startProxy(`127.0.0.1:${echo.port}`, {
      tls: { cert: certs.combined, verifyClient: true, ca: certs.ca },
      logger: createLogger({ write: (l) => lines.push(l) }),
    });
  });
  after(() => proxy.close());

  test("a certificate from the trusted CA is accepted and its CN known", async () => {
    const ws = await connect(`wss://localhost:${proxy.addr.port}/`, {
      cert: fs.readFileSync(certs.clientCert),
      key: fs.readFileSync(certs.clientKey),
    });
    await echoOnce(ws);
    assert.ok(lines.some((l) => l.includes("client CN 'alice'")), lines.join("\n"));
  });

  test("no client certificate is refused", async () => {
    await assert.rejects(connect(`wss://localhost:${proxy.addr.port}/`));
  });

  test("a certificate from another CA is refused", async () => {
    await assert.rejects(
      connect(`wss://localhost:${proxy.addr.port}/`, {
        cert: fs.readFileSync(certs.strangerCert),
        key: fs.readFileSync(certs.strangerKey),
      }),
    );
    assert.ok(!lines.some((l) => l.includes("mallory")));
    await waitFor(() => lines.some((l) => /TLS error: client certificate refused: \S/.test(l)));
  });

  test("a plain client is refused without --ssl-only", async () => {
    await assert.rejects(connect(`ws://127.0.0.1:${proxy.addr.port}/`));
    await waitFor(() =>
      lines.some((l) => l.includes("non-SSL connection received but disallowed"))
    );
  });

  // Deno's verifier (webpki) accepts X.509 v3 only: there it is refused, with the reason logged.
  test(`an X.509 v1 client certificate is ${RUNTIME === "deno" ? "refused" : "accepted"}`, async () => {
    const opening = connect(`wss://localhost:${proxy.addr.port}/`, {
      cert: fs.readFileSync(certs.v1ClientCert),
      key: fs.readFileSync(certs.v1ClientKey),
    });
    if (RUNTIME !== "deno") {
      await echoOnce(await opening);
      assert.ok(lines.some((l) => l.includes("client CN 'bob'")), lines.join("\n"));
      return;
    }
    await assert.rejects(opening);
    const v1 = /TLS error: client certificate refused: .*X\.509 v1 certificate.*Deno/;
    await waitFor(() => lines.some((l) => v1.test(l)), 5000, lines.join("\n"));
  });
});

describe("TLS to the target", () => {
  let target: tls.Server;
  let port: number;
  before(async () => {
    target = tls.createServer({
      cert: fs.readFileSync(certs.nameOnlyCert),
      key: fs.readFileSync(certs.nameOnlyKey),
    }, (sock) => sock.pipe(sock));
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    port = (target.address() as net.AddressInfo).port;
  });
  after(() => new Promise<void>((r) => target.close(() => r())));

  const cases: [string, string, boolean, number | undefined][] = [
    ["the test CA and the right name", "localhost", true, undefined],
    ["no trust in the test CA", "localhost", false, 1011],
    ["a name the certificate lacks", "127.0.0.1", true, 1011],
  ];
  for (const [what, hostname, trust, code] of cases) {
    test(`--ssl-target with ${what} ${code ? "fails with 1011" : "works"}`, async () => {
      const proxy = await startProxy({ kind: "tcp", hostname, port, tls: true }, {
        targetCa: trust ? fs.readFileSync(certs.ca, "utf8") : undefined,
      });
      try {
        const ws = await connect(`ws://127.0.0.1:${proxy.addr.port}/`);
        if (code === undefined) await echoOnce(ws);
        else assert.equal((await within(5000, closed(ws))).code, code);
      } finally {
        await proxy.close();
      }
    });
  }
});

describe("TLS on the command line", () => {
  const oneLine = (stderr: string, pattern: RegExp) => {
    const errors = stderr.split("\n").filter((l) => l.startsWith("websockify: error:"));
    assert.equal(errors.length, 1, stderr);
    assert.match(errors[0]!, pattern);
    assert.doesNotMatch(stderr, /^\s+at /m);
  };

  test("a missing --cert file is one line and exit 1", async () => {
    const { code, stderr } = await runCli([`--cert=${certs.dir}/nope.pem`, "0", "127.0.0.1:1"]);
    assert.equal(code, 1);
    oneLine(stderr, /Cannot read certificate ".*nope\.pem": ENOENT/);
  });

  test("a wrong --key-password is one line and exit 1", async () => {
    const args = [`--cert=${certs.cert}`, `--key=${certs.encryptedKey}`, "--key-password=nope"];
    const { code, stderr } = await runCli([...args, "0", "127.0.0.1:1"]);
    assert.equal(code, 1);
    oneLine(stderr, /wrong or missing password/);
  });

  test("--ssl-only without a certificate is a usage error", async () => {
    const { code, stderr } = await runCli(["--ssl-only", "0", "127.0.0.1:1"]);
    assert.equal(code, 2);
    oneLine(stderr, /SSL only and .*self\.pem not found/);
  });

  test("a cipher list matching nothing is one line and exit 1", async () => {
    const args = [`--cert=${certs.combined}`, "--ssl-ciphers=NOSUCHCIPHER", "0", "127.0.0.1:1"];
    const { code, stderr } = await runCli(args);
    assert.equal(code, 1);
    oneLine(
      stderr,
      RUNTIME === "deno"
        ? /--ssl-ciphers\) is not supported on Deno$/
        : /^websockify: error: Cannot use cipher list "NOSUCHCIPHER": no cipher match$/,
    );
  });

  test("--verify-client implies --ssl-only, in --help and the banner", async () => {
    const help = await runCli(["--help"]);
    assert.match(help.stdout, /--verify-client .*implies --ssl-only/);
    const proc = spawnCli([
      `--cert=${certs.combined}`,
      "--verify-client",
      `--cafile=${certs.ca}`,
      "127.0.0.1:0",
      `127.0.0.1:${echo.port}`,
    ]);
    try {
      const port = await proc.port();
      await waitFor(() => proc.stderr.includes("proxying from"), 5000, "banner");
      assert.match(proc.stderr, / - Deny non-SSL\/TLS connections \(implied by --verify-client\)/);
      await assert.rejects(connect(`ws://127.0.0.1:${port}/`));
    } finally {
      await proc.kill();
    }
  });

  test("--ssl-target-cafile trusts a self-signed CA for the target", async () => {
    const target = tls.createServer({
      cert: fs.readFileSync(certs.nameOnlyCert),
      key: fs.readFileSync(certs.nameOnlyKey),
    }, (sock) => sock.pipe(sock));
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    const to = `localhost:${(target.address() as net.AddressInfo).port}`;
    try {
      for (const trust of [false, true]) {
        const ca = trust ? [`--ssl-target-cafile=${certs.ca}`] : [];
        const proc = spawnCli(["--ssl-target", ...ca, "127.0.0.1:0", to]);
        try {
          const ws = await connect(`ws://127.0.0.1:${await proc.port()}/`);
          if (trust) await echoOnce(ws);
          else assert.equal((await within(5000, closed(ws))).code, 1011);
        } finally {
          await proc.kill();
        }
      }
    } finally {
      await new Promise<void>((r) => target.close(() => r()));
    }
  });

  test("the key password may come from WEBSOCKIFY_KEY_PASSWORD", async () => {
    const proc = spawnCli(
      [
        `--cert=${certs.cert}`,
        `--key=${certs.encryptedKey}`,
        "127.0.0.1:0",
        `127.0.0.1:${echo.port}`,
      ],
      { WEBSOCKIFY_KEY_PASSWORD: "sesame" },
    );
    try {
      const port = await proc.port();
      await waitFor(() => proc.stderr.includes("proxying from"), 5000, "banner");
      assert.match(proc.stderr, / - SSL\/TLS support/);
      await echoOnce(await connect(`wss://localhost:${port}/`));
    } finally {
      await proc.kill();
    }
  });
});

describe("live wss sessions of the command", () => {
  /** A CLI child serving ws:// and wss://, with one live session that has echoed. */
  async function liveSession(scheme: "ws" | "wss", args: string[] = []) {
    const proc = spawnCli([
      `--cert=${certs.combined}`,
      ...args,
      "127.0.0.1:0",
      `127.0.0.1:${echo.port}`,
    ]);
    const port = await proc.port();
    const ws = await connect(`${scheme}://localhost:${port}/`);
    const got = receive(ws, 2);
    ws.send(new Uint8Array([1, 2]));
    await within(5000, got, "echo");
    return { proc, port, ws };
  }

  const signals: [NodeJS.Signals, "ws" | "wss"][] = [
    ["SIGTERM", "wss"],
    ["SIGINT", "ws"],
    ["SIGINT", "wss"],
  ];
  for (const [signal, scheme] of signals) {
    test(`${signal} closes a live ${scheme}:// session with 1001 and exits 0`, async () => {
      const { proc, ws } = await liveSession(scheme);
      try {
        const closing = closed(ws);
        process.kill(proc.child.pid!, signal);
        const code = await within(8000, proc.exited, `exit after ${signal}`);
        assert.deepEqual(await within(5000, closing, "client close"), {
          code: 1001,
          reason: "Server shutting down",
        });
        assert.equal(code, 0, proc.stderr);
      } finally {
        await proc.kill("SIGKILL");
      }
    });
  }

  test("--timeout leaves a live wss:// session up and stops accepting", async () => {
    const { proc, port, ws } = await liveSession("wss", ["--timeout=1"]);
    try {
      await waitFor(() => proc.stderr.includes("listener exit due to --timeout 1"), 5000);
      await assert.rejects(connect(`wss://localhost:${port}/`), "a new client was accepted");
      await sleep(1500); // the once-a-second check would end the server if the session were gone
      await echoOnce(ws);
      assert.equal(await within(8000, proc.exited, "exit"), 0);
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});

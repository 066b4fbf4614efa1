/**
 * TLS on the listening port (sniffed per connection), client certificates,
 * TLS versions, TLS to the target, the Flash policy answer and the
 * first-byte timeout.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import tls from "node:tls";
import WebSocket from "ws";
import { createLogger, type Websockify } from "../mod.ts";
import { type Certs, makeCerts } from "./_certs.ts";
import {
  closed,
  receive,
  runCli,
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

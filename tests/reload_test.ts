/**
 * SIGHUP reloads, through the real CLI with files in a temporary directory:
 * a cached token source, a custom auth plugin's source, the TLS certificate
 * (live wss sessions keep flowing), all or nothing when one part is broken,
 * every `--workers` process; and `Websockify.reload()` for embedders.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import WebSocket from "ws";
import { ConfigError } from "../mod.ts";
import { type Certs, makeCerts, servedFingerprint } from "./_certs.ts";
import { rawConnect } from "./_frames.ts";
import {
  type CliProcess,
  closed,
  pattern,
  receive,
  spawnCli,
  startEchoServer,
  startProxy,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";
import { after, before, describe, test } from "./_skip.ts";

let certs: Certs;
let echo: TcpServer;
let tmp: string;
let authPlugin: string;
const procs: CliProcess[] = [];

before(async () => {
  certs = makeCerts();
  echo = await startEchoServer();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-reload-"));
  // A custom auth plugin that reads its password file once and on reload.
  authPlugin = path.join(tmp, "auth.mjs");
  fs.writeFileSync(
    authPlugin,
    `import fs from "node:fs";
export function authPlugin(source) {
  const read = () => {
    const text = fs.readFileSync(source, "utf8").trim();
    if (!text) throw new Error("no password in " + source);
    return text;
  };
  let password = read();
  return {
    authenticate({ headers }) {
      if (headers.get("authorization") === "Bearer " + password) return;
      throw Object.assign(new Error("Forbidden"), {
        [Symbol.for("websockify.AuthenticationError")]: true,
        status: 403,
        headers: {},
        logMessage: "wrong password",
      });
    },
    async reload() {
      const next = read();
      return () => { password = next; };
    },
  };
}
`,
  );
});
after(async () => {
  for (const proc of procs) await proc.kill("SIGKILL");
  await echo.close();
  certs.remove();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Bun applies a timeout per test only. */
const SLOW = { timeout: 60000 };

function cli(args: string[]): CliProcess {
  const proc = spawnCli(args);
  procs.push(proc);
  return proc;
}

const hup = (proc: CliProcess) => process.kill(proc.child.pid!, "SIGHUP");

/** How many stderr lines match `re`. */
const count = (proc: CliProcess, re: RegExp) =>
  proc.stderr.split("\n").filter((line) => re.test(line)).length;

/** Waits for the `n`th stderr line matching `re`. */
const waitLines = (proc: CliProcess, re: RegExp, n = 1) =>
  waitFor(() => count(proc, re) >= n, 20000, `${n} line(s) ${re}`);

/** The HTTP status of an upgrade with `token` (and an Authorization header). */
async function status(port: number, token?: string, auth?: string): Promise<number> {
  const raw = await within(
    10000,
    rawConnect(port, { Authorization: auth }, { path: token ? `/?token=${token}` : "/" }),
  );
  raw.sock.destroy();
  return raw.status;
}

/** Copies a certificate and key pair to the paths the proxy reads. */
function install(pair: { cert: string; key: string }, cert: string, key: string): void {
  fs.copyFileSync(pair.cert, cert);
  fs.copyFileSync(pair.key, key);
}

const fingerprintOf = (file: string) => new crypto.X509Certificate(fs.readFileSync(file));

/** The certificate a new TLS client is shown. */
const served = (port: number) => servedFingerprint(port, certs.ca);

/** Opens a wss client trusting the test CA. */
function openWss(port: number, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(`wss://localhost:${port}/`, ["binary"], {
    ca: fs.readFileSync(certs.ca),
    headers,
  });
  return within(
    10000,
    new Promise((resolve, reject) => {
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    }),
    "wss open",
  );
}

async function echoBytes(ws: WebSocket, data: Uint8Array): Promise<void> {
  const got = receive(ws, data.length);
  ws.send(data);
  assert.deepEqual(await within(10000, got, "echo"), data);
}

/** Starts the CLI with TLS files copied from the server pair; resolves with its port. */
async function tlsProxy(name: string, extra: string[] = []) {
  const cert = path.join(tmp, `${name}.pem`);
  const key = path.join(tmp, `${name}.key`);
  install({ cert: certs.cert, key: certs.key }, cert, key);
  const proc = cli([
    `--cert=${cert}`,
    `--key=${key}`,
    ...extra,
    "127.0.0.1:0",
    `127.0.0.1:${echo.port}`,
  ]);
  return { proc, port: await proc.port(), cert, key };
}

describe("SIGHUP reload", SLOW, () => {
  test("a cached token source is read again: new tokens accepted, old refused", SLOW, async () => {
    const tokens = path.join(tmp, "ro.tokens");
    const logFile = path.join(tmp, "ro.log");
    fs.writeFileSync(tokens, `old: 127.0.0.1:${echo.port}\n`);
    const proc = cli([
      "--token-plugin=ReadOnlyTokenFile",
      `--token-source=${tokens}`,
      `--log-file=${logFile}`,
      "127.0.0.1:0",
    ]);
    const port = await proc.port();
    assert.equal(await status(port, "old"), 101);
    fs.writeFileSync(tokens, `new: 127.0.0.1:${echo.port}\n`);
    assert.equal(await status(port, "new"), 404, "read once until SIGHUP");
    fs.renameSync(logFile, `${logFile}.1`);
    hup(proc);
    await waitLines(proc, /INFO Reloaded: log file, tokens$/);
    assert.equal(await status(port, "new"), 101);
    assert.equal(await status(port, "old"), 404);
    assert.match(fs.readFileSync(logFile, "utf8"), /INFO Reloaded: log file, tokens\n/);
    assert.equal(proc.child.exitCode, null, "still serving");
  });

  test("an auth plugin's source is read again", SLOW, async () => {
    const secret = path.join(tmp, "auth.secret");
    fs.writeFileSync(secret, "one\n");
    const proc = cli([
      `--auth-plugin=${authPlugin}`,
      `--auth-source=${secret}`,
      "127.0.0.1:0",
      `127.0.0.1:${echo.port}`,
    ]);
    const port = await proc.port();
    assert.equal(await status(port, undefined, "Bearer one"), 101);
    fs.writeFileSync(secret, "two\n");
    assert.equal(await status(port, undefined, "Bearer two"), 403, "read once until SIGHUP");
    hup(proc);
    await waitLines(proc, /INFO Reloaded: auth$/);
    assert.equal(await status(port, undefined, "Bearer two"), 101);
    assert.equal(await status(port, undefined, "Bearer one"), 403);
  });

  test(
    "a new certificate is served to new clients; a live wss session keeps flowing",
    SLOW,
    async () => {
      const { proc, port, cert, key } = await tlsProxy("swap");
      const oldPrint = fingerprintOf(certs.cert).fingerprint256;
      const newPrint = fingerprintOf(certs.nameOnlyCert).fingerprint256;
      assert.equal(await served(port), oldPrint);
      const live = await openWss(port);
      await echoBytes(live, pattern(4096, 1));
      install({ cert: certs.nameOnlyCert, key: certs.nameOnlyKey }, cert, key);
      hup(proc);
      await waitLines(proc, /INFO Reloaded: certificate$/);
      assert.equal(await served(port), newPrint);
      // The session opened before the reload goes on, byte for byte.
      await echoBytes(live, pattern(256 * 1024, 2));
      const fresh = await openWss(port);
      await echoBytes(fresh, pattern(1024, 3));
      fresh.close();
      live.close();
      await within(10000, Promise.all([closed(fresh), closed(live)]), "closes");
    },
  );

  test(
    "a broken certificate: one error line, nothing reloaded, old certificate kept",
    SLOW,
    async () => {
      const secret = path.join(tmp, "broken.secret");
      fs.writeFileSync(secret, "one\n");
      const { proc, port, cert } = await tlsProxy("broken", [
        `--auth-plugin=${authPlugin}`,
        `--auth-source=${secret}`,
      ]);
      const oldPrint = fingerprintOf(certs.cert).fingerprint256;
      fs.writeFileSync(secret, "two\n");
      fs.writeFileSync(cert, "-----BEGIN CERTIFICATE-----\nnot a certificate\n");
      hup(proc);
      await waitLines(proc, /ERROR Reload failed/);
      const errors = proc.stderr.split("\n").filter((line) => / ERROR /.test(line));
      assert.equal(errors.length, 1, errors.join("\n"));
      assert.match(errors[0]!, /ERROR Reload failed, keeping the old settings: certificate: /);
      assert.ok(errors[0]!.includes(cert), errors[0]);
      assert.doesNotMatch(proc.stderr, /Reloaded:/);
      // All or nothing: the auth source read fine but stays the old one.
      assert.equal(await status(port, undefined, "Bearer one"), 101);
      assert.equal(await status(port, undefined, "Bearer two"), 403);
      assert.equal(await served(port), oldPrint);
      const ws = await openWss(port, { Authorization: "Bearer one" });
      await echoBytes(ws, pattern(1024, 4));
      ws.close();
      await within(10000, closed(ws), "close");
      assert.equal(proc.child.exitCode, null, "still serving");
    },
  );

  test("--workers: every worker reloads itself", SLOW, async () => {
    const tokens = path.join(tmp, "workers.tokens");
    fs.writeFileSync(tokens, `old: 127.0.0.1:${echo.port}\n`);
    const proc = cli([
      "--workers=2",
      "--token-plugin=ReadOnlyTokenFile",
      `--token-source=${tokens}`,
      "127.0.0.1:0",
    ]);
    const port = await proc.port();
    await waitFor(() => proc.stderr.includes("Worker listening on "), 20000, "worker 2 listening");
    fs.writeFileSync(tokens, `new: 127.0.0.1:${echo.port}\n`);
    hup(proc);
    await waitLines(proc, /INFO w1 Reloaded: tokens$/);
    await waitLines(proc, /INFO w2 Reloaded: tokens$/);
    // New connections land on either worker: each must have the new tokens.
    for (let i = 0; i < 6; i++) {
      assert.equal(await status(port, "new"), 101);
      assert.equal(await status(port, "old"), 404);
    }
  });
});

describe("Websockify.reload()", () => {
  test("resolves with what was reloaded, rejects and keeps the old on a broken file", async () => {
    const cert = path.join(tmp, "api.pem");
    const key = path.join(tmp, "api.key");
    install({ cert: certs.cert, key: certs.key }, cert, key);
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, { tls: { cert, key } });
    try {
      fs.writeFileSync(key, "garbage\n");
      await assert.rejects(
        proxy.reload(),
        (error) => error instanceof ConfigError && /^certificate: .*api\.key/.test(error.message),
      );
      assert.equal(await served(proxy.addr.port), fingerprintOf(certs.cert).fingerprint256);
      install({ cert: certs.nameOnlyCert, key: certs.nameOnlyKey }, cert, key);
      assert.deepEqual(await proxy.reload(), ["certificate"]);
      assert.equal(await served(proxy.addr.port), fingerprintOf(certs.nameOnlyCert).fingerprint256);
    } finally {
      await proxy.close();
    }
  });
});

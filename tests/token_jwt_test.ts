/**
 * `JWTTokenApi` with real tokens made by `jose`: HS256 with upstream's
 * base64url key file, RS256 and ES256 with PEM keys in every common
 * encoding, nested JWE, the time checks, forgeries, then through the proxy
 * and the CLI.
 */
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  base64url,
  CompactEncrypt,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  importPKCS8,
  importSPKI,
  type JWTPayload,
  SignJWT,
} from "jose";
import { jwtTokenApi } from "../adapters/stores/token_jwt.ts";
import { createLogger } from "../lib/log.ts";
import { isAuthenticationError } from "../lib/errors.ts";
import { decodeSymmetricKey } from "../lib/plugins/token_jwt.ts";
import type { Target } from "../lib/types.ts";
import { loadTokenPlugin, type Websockify, websockify } from "../mod.ts";
import { rawConnect } from "./_frames.ts";
import {
  closed,
  openClient,
  pattern,
  receive,
  sleep,
  spawnCli,
  startEchoServer,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";

type Key = Parameters<SignJWT["sign"]>[0];

let tmp: string;
let echo: TcpServer;
/** Key files by name, and the keys that sign or encrypt for them. */
const file: Record<string, string> = {};
let upstreamSecret: Uint8Array;
let aesSecret: Uint8Array;
let rsa: { privateKey: Key; publicKey: Key };
let ec: { privateKey: Key; publicKey: Key };
let otherRsa: { privateKey: Key; publicKey: Key };

const now = () => Math.floor(Date.now() / 1000);
const target = (): Target => ({ kind: "tcp", hostname: "127.0.0.1", port: echo.port });
const claims = (): JWTPayload => ({ host: "127.0.0.1", port: echo.port });

/** The key in a PEM file, for `alg` (WebCrypto keys are bound to one algorithm). */
function pemKey(name: string, alg: string): Promise<Key> {
  const text = fs.readFileSync(file[name]!, "utf8");
  return text.includes("PRIVATE") ? importPKCS8(text, alg) : importSPKI(text, alg);
}

/** A signed JWT with `payload`. */
function sign(payload: JWTPayload, alg: string, key: Key): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg }).sign(key);
}

/** A JWE whose plaintext is `jws`, as upstream expects. */
function encrypt(jws: string, alg: string, enc: string, key: Key): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(jws))
    .setProtectedHeader({ alg, enc, cty: "JWT" })
    .encrypt(key);
}

function writeKey(name: string, text: string): void {
  file[name] = path.join(tmp, name);
  fs.writeFileSync(file[name], text);
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-jwt-"));
  echo = await startEchoServer();
  // Upstream's fixture tests/fixtures/symmetric.key.
  writeKey("symmetric.key", "secret_sauce");
  upstreamSecret = decodeSymmetricKey("secret_sauce");
  aesSecret = new Uint8Array(randomBytes(32));
  writeKey("aes.key", `${base64url.encode(aesSecret)}\n`);
  rsa = await generateKeyPair("RS256", { extractable: true });
  ec = await generateKeyPair("ES256", { extractable: true });
  otherRsa = await generateKeyPair("RS256", { extractable: true });
  const rsaPkcs8 = await exportPKCS8(rsa.privateKey as CryptoKey);
  const ecPkcs8 = await exportPKCS8(ec.privateKey as CryptoKey);
  writeKey("rsa_private.pem", rsaPkcs8);
  writeKey("rsa_public.pem", await exportSPKI(rsa.publicKey as CryptoKey));
  writeKey("ec_private.pem", ecPkcs8);
  writeKey("ec_public.pem", await exportSPKI(ec.publicKey as CryptoKey));
  // The older encodings openssl writes: PKCS#1 for RSA, SEC1 for EC.
  const rsaKey = createPrivateKey(rsaPkcs8);
  writeKey("rsa_pkcs1.pem", rsaKey.export({ type: "pkcs1", format: "pem" }) as string);
  writeKey(
    "rsa_pkcs1_public.pem",
    createPublicKey(rsaKey).export({ type: "pkcs1", format: "pem" }) as string,
  );
  writeKey(
    "ec_sec1.pem",
    createPrivateKey(ecPkcs8).export({ type: "sec1", format: "pem" }) as string,
  );
});
after(async () => {
  await echo.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("decodeSymmetricKey()", () => {
  const cases: [string, number[]][] = [
    ["secret_sauce", [...Buffer.from("secret_sauce", "base64url")]],
    ["secret_sauce\n", [...Buffer.from("secret_sauce", "base64url")]],
    ["AQID", [1, 2, 3]],
    ["AQI=", [1, 2]],
    ["-_8", [251, 255]],
    ["+/8", [251, 255]],
  ];
  for (const [text, bytes] of cases) {
    test(`decodeSymmetricKey() reads ${JSON.stringify(text)}`, () => {
      assert.deepEqual([...decodeSymmetricKey(text)], bytes);
    });
  }
  for (const text of ["", "\n", "abcde", "not base64!", "a.b"]) {
    test(`decodeSymmetricKey() refuses ${JSON.stringify(text)}`, () => {
      assert.throws(() => decodeSymmetricKey(text), SyntaxError);
    });
  }
});

describe("JWTTokenApi: valid tokens", () => {
  test("jwtTokenApi() verifies HS256 with upstream's base64url key file", async () => {
    const plugin = await loadTokenPlugin("JWTTokenApi", file["symmetric.key"]);
    assert.deepEqual(await plugin.lookup(await sign(claims(), "HS256", upstreamSecret)), target());
    const portText = { host: "127.0.0.1", port: String(echo.port), exp: now() + 60 };
    assert.deepEqual(await plugin.lookup(await sign(portText, "HS512", upstreamSecret)), target());
  });

  test("a symmetric key file is base64url text: its decoded bytes are the key, not the text", async () => {
    const plugin = await jwtTokenApi(file["symmetric.key"]);
    const decoded = new Uint8Array(Buffer.from("secret_sauce", "base64url"));
    assert.deepEqual(await plugin.lookup(await sign(claims(), "HS256", decoded)), target());
    const asText = new TextEncoder().encode("secret_sauce");
    await assert.rejects(
      Promise.resolve(plugin.lookup(await sign(claims(), "HS256", asText))),
      (e: unknown) => isAuthenticationError(e) && e.status === 404,
    );
  });

  const pems: [string, string, string][] = [
    ["rsa_private.pem", "RS256", "rsa_private.pem"],
    ["rsa_public.pem", "RS256", "rsa_private.pem"],
    ["rsa_pkcs1.pem", "PS256", "rsa_private.pem"],
    ["rsa_pkcs1_public.pem", "RS384", "rsa_private.pem"],
    ["ec_private.pem", "ES256", "ec_private.pem"],
    ["ec_public.pem", "ES256", "ec_private.pem"],
    ["ec_sec1.pem", "ES256", "ec_private.pem"],
  ];
  for (const [name, alg, signer] of pems) {
    test(`jwtTokenApi() verifies ${alg} with ${name}`, async () => {
      const plugin = await jwtTokenApi(file[name]);
      const token = await sign(claims(), alg, await pemKey(signer, alg));
      assert.deepEqual(await plugin.lookup(token), target());
    });
  }

  test("jwtTokenApi() decrypts nested JWE with a symmetric key (dir, A256KW)", async () => {
    const plugin = await jwtTokenApi(file["aes.key"]);
    const jws = await sign(claims(), "HS256", aesSecret);
    assert.deepEqual(
      await plugin.lookup(await encrypt(jws, "dir", "A256GCM", aesSecret)),
      target(),
    );
    const wrapped = await encrypt(jws, "A256KW", "A128CBC-HS256", aesSecret);
    assert.deepEqual(await plugin.lookup(wrapped), target());
  });

  test("jwtTokenApi() decrypts nested JWE with an RSA private key (RSA-OAEP-256)", async () => {
    const plugin = await jwtTokenApi(file["rsa_private.pem"]);
    const jws = await sign(claims(), "RS256", rsa.privateKey);
    const jwe = await encrypt(
      jws,
      "RSA-OAEP-256",
      "A256GCM",
      await pemKey("rsa_public.pem", "RSA-OAEP-256"),
    );
    assert.deepEqual(await plugin.lookup(jwe), target());
  });

  test("jwtTokenApi() picks up a replaced key file", async () => {
    writeKey("rotating.pem", fs.readFileSync(file["rsa_public.pem"]!, "utf8"));
    const plugin = await jwtTokenApi(file["rotating.pem"], { checkIntervalMs: 0 });
    const oldToken = await sign(claims(), "RS256", rsa.privateKey);
    assert.deepEqual(await plugin.lookup(oldToken), target());
    fs.writeFileSync(file["rotating.pem"]!, await exportSPKI(otherRsa.publicKey as CryptoKey));
    await assert.rejects(
      Promise.resolve(plugin.lookup(oldToken)),
      (e: unknown) => isAuthenticationError(e) && e.status === 404,
    );
    assert.deepEqual(
      await plugin.lookup(await sign(claims(), "RS256", otherRsa.privateKey)),
      target(),
    );
  });
});

describe("JWTTokenApi: refused tokens", () => {
  /** Looks `token` up with the key file `name`; expects a 404 refusal with a log reason. */
  async function refused(name: string, token: string, reason: RegExp): Promise<void> {
    const plugin = await jwtTokenApi(file[name]);
    await assert.rejects(Promise.resolve(plugin.lookup(token)), (e: unknown) => {
      assert.ok(isAuthenticationError(e), String(e));
      assert.equal(e.status, 404);
      assert.equal(e.message, "Token not found");
      assert.match(e.logMessage, /^JWT token rejected: /);
      assert.match(e.logMessage, reason);
      return true;
    });
  }

  test("an expired token, and one not valid yet, are refused 403 with upstream's reasons", async () => {
    const plugin = await jwtTokenApi(file["symmetric.key"]);
    const expired = await sign({ ...claims(), exp: now() - 5 }, "HS256", upstreamSecret);
    await assert.rejects(
      Promise.resolve(plugin.lookup(expired)),
      (e: unknown) =>
        isAuthenticationError(e) && e.status === 403 && e.message === "Token has expired",
    );
    const early = await sign({ ...claims(), nbf: now() + 60 }, "HS256", upstreamSecret);
    await assert.rejects(
      Promise.resolve(plugin.lookup(early)),
      (e: unknown) =>
        isAuthenticationError(e) && e.status === 403 && e.message === "Token can not be used yet",
    );
  });

  test("missing or bad host and port claims", async () => {
    for (
      const payload of [{ host: "h" }, { port: 1 }, { host: "h", port: 0 }, { host: 1, port: 1 }]
    ) {
      await refused(
        "symmetric.key",
        await sign(payload, "HS256", upstreamSecret),
        /"(host|port)"|target/,
      );
    }
  });

  test("forgeries: wrong key, alg none, HS256 keyed with the public key, garbage", async () => {
    await refused("symmetric.key", await sign(claims(), "HS256", aesSecret), /signature/);
    await refused(
      "rsa_public.pem",
      await sign(claims(), "RS256", otherRsa.privateKey),
      /signature/,
    );
    const none = `${base64url.encode('{"alg":"none"}')}.${
      base64url.encode(JSON.stringify(claims()))
    }.`;
    await refused("symmetric.key", none, /./);
    // The classic confusion: the public PEM text used as an HMAC secret.
    const publicText = new TextEncoder().encode(fs.readFileSync(file["rsa_public.pem"]!, "utf8"));
    await refused("rsa_public.pem", await sign(claims(), "HS256", publicText), /./);
    await refused("symmetric.key", "not.a.jwt", /./);
    await refused("symmetric.key", "garbage", /./);
  });

  test("JWE: not nested, no private key, wrong key", async () => {
    const bareClaims = new TextEncoder().encode(JSON.stringify(claims()));
    const bare = await new CompactEncrypt(bareClaims)
      .setProtectedHeader({ alg: "dir", enc: "A256GCM" })
      .encrypt(aesSecret);
    await refused("aes.key", bare, /./);
    const jws = await sign(claims(), "RS256", rsa.privateKey);
    const jwe = await encrypt(
      jws,
      "RSA-OAEP-256",
      "A256GCM",
      await pemKey("rsa_public.pem", "RSA-OAEP-256"),
    );
    await refused("rsa_public.pem", jwe, /needs a private or symmetric key/);
    const otherAes = new Uint8Array(randomBytes(32));
    const foreign = await encrypt(
      await sign(claims(), "HS256", otherAes),
      "dir",
      "A256GCM",
      otherAes,
    );
    await refused("aes.key", foreign, /./);
  });
});

describe("JWTTokenApi start-up", () => {
  test("loadTokenPlugin() fails on a missing, empty or unreadable key file", async () => {
    const missing = path.join(tmp, "missing.key");
    await assert.rejects(loadTokenPlugin("JWTTokenApi", missing), {
      name: "ConfigError",
      message:
        `Cannot start plugin 'JWTTokenApi': Cannot read "${missing}": no such file or directory`,
    });
    writeKey("junk.key", "this is not a key!\n");
    await assert.rejects(
      loadTokenPlugin("JWTTokenApi", file["junk.key"]),
      /Cannot use ".*junk.key" as a JWT key: Cannot read the key/,
    );
    writeKey("bad.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    await assert.rejects(loadTokenPlugin("JWTTokenApi", file["bad.pem"]), /as a JWT key/);
    await assert.rejects(
      loadTokenPlugin("JWTTokenApi"),
      /JWTTokenApi needs --token-source=KEYFILE/,
    );
  });
});

describe("JWTTokenApi through the proxy", () => {
  let proxy: Websockify;
  let fragile: Websockify;
  const lines: string[] = [];
  before(async () => {
    proxy = await websockify({
      listen: { hostname: "127.0.0.1", port: 0 },
      tokenPlugin: await loadTokenPlugin("JWTTokenApi", file["rsa_public.pem"]),
      logger: createLogger({ write: (line) => lines.push(line) }),
    });
    writeKey("fragile.key", "secret_sauce");
    fragile = await websockify({
      listen: { hostname: "127.0.0.1", port: 0 },
      tokenPlugin: await jwtTokenApi(file["fragile.key"], { checkIntervalMs: 0 }),
    });
  });
  after(() => Promise.all([proxy.close(), fragile.close()]));

  const status = async (port: number, urlPath: string) => {
    const client = await within(5000, rawConnect(port, {}, { path: urlPath }), "handshake");
    client.sock.destroy();
    return client.status;
  };

  test("a signed token reaches its target; bad ones 404, expired or none 403", async () => {
    const port = proxy.addr.port;
    const token = await sign({ ...claims(), exp: now() + 60 }, "RS256", rsa.privateKey);
    const ws = await within(5000, openClient(port, ["binary"], "127.0.0.1", `/?token=${token}`));
    const data = pattern(5000);
    const got = receive(ws, data.length);
    ws.send(data);
    assert.deepEqual(await within(5000, got, "echo"), data);
    ws.close();
    await within(5000, closed(ws));
    const expired = await sign({ ...claims(), exp: now() - 1 }, "RS256", rsa.privateKey);
    assert.equal(await status(port, `/?token=${expired}`), 403);
    assert.equal(await status(port, "/?token=garbage"), 404);
    assert.equal(await status(port, "/"), 403);
  });

  test("a rejected token is one log line with the reason, the token shortened", async () => {
    const forged = await sign(claims(), "RS256", otherRsa.privateKey);
    lines.length = 0;
    assert.equal(await status(proxy.addr.port, `/?token=${forged}`), 404);
    await waitFor(() => lines.length > 0, 5000, "log line");
    await sleep(100); // a second line would follow at once
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(
      lines[0]!,
      /INFO #\d+ 127\.0\.0\.1:\d+: Token 'eyJh\.\.#[0-9a-f]{8}' refused: JWT token rejected: .*signature/,
    );
    for (const part of forged.split(".")) assert.ok(!lines[0]!.includes(part), lines[0]);
  });

  test("a key file that disappears fails lookups (503)", async () => {
    const port = fragile.addr.port;
    const token = await sign(claims(), "HS256", upstreamSecret);
    assert.equal(await status(port, `/?token=${token}`), 101);
    fs.rmSync(file["fragile.key"]!);
    assert.equal(await status(port, `/?token=${token}`), 503);
  });

  test("--token-plugin=JWTTokenApi works from the command line", async () => {
    const proc = spawnCli([
      "--token-plugin=JWTTokenApi",
      `--token-source=${file["ec_public.pem"]}`,
      "127.0.0.1:0",
    ]);
    try {
      const port = await proc.port();
      const token = await sign(claims(), "ES256", ec.privateKey);
      assert.equal(await status(port, `/?token=${token}`), 101);
      assert.equal(await status(port, "/?token=x.y.z"), 404);
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});

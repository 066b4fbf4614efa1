/**
 * The telnet demo page in a real browser: the client is built with tsc, the
 * proxy serves it with `web` and TLS on one port, Debian's Chromium (driven by
 * playwright-core, never a downloaded browser) loads it over http:// and
 * https://, connects with ws:// and wss:// to a line service that upper-cases
 * what it gets, and the answer must show up in the output area.
 *
 * Set WSTELNET_SCREENSHOT=/tmp/wstelnet.png to keep a picture of the page.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import type net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import type { BrowserContext, Page } from "playwright-core";
import type { Websockify } from "../mod.ts";
import { type Certs, makeCerts } from "./_certs.ts";
import { ROOT, startProxy, startTcpServer, type TcpServer, waitFor, within } from "./_harness.ts";
import { CHROMIUM, CHROMIUM_ARGS } from "./_chromium.ts";
import { after, describe, needs, test } from "./_skip.ts";

// A dynamic import, so that a missing package skips the suite instead of failing it.
const playwright = await import("playwright-core").catch(() => undefined);
const SKIP =
  needs(`Debian's Chromium at ${CHROMIUM}`, fs.existsSync(CHROMIUM), "apt-get install chromium") ||
  needs("playwright-core", playwright !== undefined, "npm ci");

const T = { timeout: 60000 };

const IAC = 255;
const DO = 253;
const WONT = 252;
const ECHO = 1;

/**
 * A line service: a telnet `DO ECHO` and an ANSI-coloured banner, then every
 * line back upper-cased; "quit" ends the connection. Records telnet replies.
 */
function upperCaseService(sock: net.Socket, replies: number[][]): void {
  sock.write(Buffer.from([IAC, DO, ECHO]));
  sock.write("\x1b[1;32mwelcome\x1b[0m to the \x1b[4mupper-case\x1b[24m echo\r\n");
  sock.on("end", () => sock.end()); // the proxy half-closes when the browser leaves
  let pending = Buffer.alloc(0);
  sock.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    // Each pass consumes bytes, so this ends.
    for (;;) {
      const iac = pending.indexOf(IAC);
      if (iac >= 0 && pending.length >= iac + 3) {
        replies.push([...pending.subarray(iac, iac + 3)]);
        pending = Buffer.concat([pending.subarray(0, iac), pending.subarray(iac + 3)]);
        continue;
      }
      const nl = pending.indexOf(10);
      if (nl < 0) return;
      const line = pending.subarray(0, nl).toString("utf8").replace(/\r$/, "");
      pending = pending.subarray(nl + 1);
      if (line === "quit") return void sock.end("bye\r\n");
      sock.write(`${line.toUpperCase()}\r\n`);
    }
  });
}

/** The base64 SHA-256 of a certificate's public key, for Chromium's SPKI allow list. */
function spkiHash(certFile: string): string {
  const pem = execFileSync("openssl", ["x509", "-in", certFile, "-noout", "-pubkey"], {
    encoding: "utf8",
  });
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
  return createHash("sha256").update(der).digest("base64");
}

/** Builds the client into `out` with the project's build script, under Node. */
function buildClient(out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // "node", not process.execPath: that is deno or bun when they run this suite.
    execFile(
      "node",
      [path.join(ROOT, "client", "build.mjs"), out],
      { timeout: 60000 },
      (err, _o, e) =>
        err ? reject(new Error(`client build failed: ${err.message}\n${e}`)) : resolve(),
    );
  });
}

describe("wstelnet.html in Chromium", { skip: SKIP }, () => {
  /** Everything the tests share, made by the first test that needs it. */
  interface Env {
    tmp: string;
    certs: Certs;
    service: TcpServer;
    proxy: Websockify;
    context: BrowserContext;
  }
  // Set up lazily inside a test, not in before(): bun ignores hook timeouts (5 s),
  // and tsc plus a browser start can take longer than that.
  let ready: Promise<Env> | undefined;
  const parts: Partial<Env> = {};
  const replies: number[][] = [];

  function env(): Promise<Env> {
    ready ??= (async () => {
      parts.tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wstelnet-"));
      parts.certs = makeCerts();
      await buildClient(path.join(parts.tmp, "web"));
      parts.service = await startTcpServer((sock) => upperCaseService(sock, replies));
      // The real use: page and WebSocket on one port, plain and TLS.
      parts.proxy = await startProxy(`127.0.0.1:${parts.service.port}`, {
        web: path.join(parts.tmp, "web"),
        tls: { cert: parts.certs.combined },
      });
      // A new empty profile; only the test certificate's key is trusted, for https and wss.
      parts.context = await playwright!.chromium.launchPersistentContext(
        path.join(parts.tmp, "profile"),
        {
          executablePath: CHROMIUM,
          headless: true,
          args: [
            ...CHROMIUM_ARGS,
            `--ignore-certificate-errors-spki-list=${spkiHash(parts.certs.cert)}`,
          ],
          timeout: 30000,
        },
      );
      return parts as Env;
    })();
    return ready;
  }

  after(async () => {
    // Each step bounded and independent, so one failure does not leave the others running.
    await ready?.catch(() => {});
    const { context, proxy, service, certs, tmp } = parts;
    await within(3000, context?.close() ?? Promise.resolve(), "chromium close").catch(() => {});
    await within(1500, proxy?.close() ?? Promise.resolve(), "proxy close").catch(() => {});
    await service?.close();
    certs?.remove();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Opens the page; collects page errors so a broken module load fails the test. */
  async function openPage(scheme: "http" | "https"): Promise<{ page: Page; errors: string[] }> {
    const { context, proxy } = await env();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(`${scheme}://127.0.0.1:${proxy.addr.port}/wstelnet.html`, { timeout: 10000 });
    return { page, errors };
  }

  /** Clicks Connect and waits for the banner. */
  async function connect(page: Page): Promise<void> {
    await page.click("#connectButton");
    await page.locator("#status.connected").waitFor({ timeout: 10000 });
    await page.locator("#output", { hasText: "welcome to the upper-case echo" })
      .waitFor({ timeout: 10000 });
  }

  /** Types `text`, presses Enter and waits for `answer` in the output. */
  async function exchange(page: Page, text: string, answer: string): Promise<void> {
    await page.fill("#line", text);
    await page.press("#line", "Enter");
    await page.locator("#output .line", { hasText: answer }).first().waitFor({ timeout: 10000 });
  }

  // Per-test timeouts: the first test also builds the client and starts Chromium.
  test("http:// page, ws://, binary: a typed line comes back upper-cased", T, async () => {
    const { page, errors } = await openPage("http");
    const { proxy } = await env();
    try {
      // The fields default to the proxy that served the page.
      assert.equal(await page.inputValue("#host"), "127.0.0.1");
      assert.equal(await page.inputValue("#port"), String(proxy.addr.port));
      await connect(page);
      const status = await page.textContent("#status");
      assert.match(
        status ?? "",
        new RegExp(`ws://127\\.0\\.0\\.1:${proxy.addr.port}/ \\(binary\\)`),
      );

      // The banner's SGR codes became styles, not text.
      assert.equal(await page.textContent("#output span.f2.bold"), "welcome");
      assert.equal(await page.textContent("#output span.ul"), "upper-case");
      const shown = await page.textContent("#output") ?? "";
      assert.ok(!shown.includes("\x1b") && !shown.includes("[1;32m"), shown);
      // The telnet DO ECHO was refused with WONT ECHO.
      await waitFor(() => replies.some((r) => r.join() === [IAC, WONT, ECHO].join()));

      await exchange(page, "hello, proxy", "HELLO, PROXY");
      await exchange(page, "grüße über ws", "GRÜSSE ÜBER WS");
      // Local echo shows what was typed, dimmed.
      assert.equal(await page.textContent("#output .line span.dim >> nth=0"), "hello, proxy");
      const shot = process.env.WSTELNET_SCREENSHOT;
      if (shot) await page.screenshot({ path: shot, fullPage: true });

      await page.click("#connectButton"); // now "Disconnect"
      await page.locator("#status", { hasText: "Disconnected: 1000" }).waitFor({ timeout: 10000 });
      await waitFor(() => proxy.sessions === 0, 5000, "session end");
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });

  test("https:// page, wss://, base64: same port, legacy encoding", T, async () => {
    const { page, errors } = await openPage("https");
    try {
      await page.selectOption("#encoding", "base64");
      await connect(page);
      const status = await page.textContent("#status");
      assert.match(status ?? "", /wss:\/\/127\.0\.0\.1:\d+\/ \(base64\)/);
      await exchange(page, "secure line", "SECURE LINE");
      // The service ending the connection is shown with the proxy's reason.
      await page.fill("#line", "quit");
      await page.press("#line", "Enter");
      await page.locator("#output .line", { hasText: "bye" }).waitFor({ timeout: 10000 });
      await page.locator("#status", { hasText: "Disconnected: 1000 Target closed" })
        .waitFor({ timeout: 10000 });
      assert.equal(await page.isDisabled("#line"), true);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
});

/**
 * End to end with the peers this proxy exists for: noVNC (Debian's `novnc`)
 * in headless Chromium, loaded from the proxy's own web server, connecting
 * over the same port to a real TigerVNC server (`Xvnc`) on loopback, over
 * http + ws:// and over https + wss://.
 *
 * Skipped when Xvnc, noVNC's files, /usr/bin/chromium or playwright-core is
 * missing. Set NOVNC_SCREENSHOTS=DIR to keep a screenshot of each connected
 * page.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import tls from "node:tls";
import type { BrowserContext, Page } from "playwright-core";
import { createLogger, type Websockify } from "../mod.ts";
import { type Certs, makeCerts } from "./_certs.ts";
import { freePort, httpGet, RUNTIME, sleep, startProxy, waitFor, within } from "./_harness.ts";
import { CHROMIUM, CHROMIUM_ARGS } from "./_chromium.ts";
import { after, before, describe, needs, type SkipIf, test } from "./_skip.ts";

const NOVNC_DIRS = ["/usr/share/novnc"];
const XVNC_BINS = ["/usr/bin/Xvnc", "/usr/bin/Xtigervnc"];
const WIDTH = 640;
const HEIGHT = 480;
const DESKTOP = "wsfy-novnc";

const novncDir = NOVNC_DIRS.find((d) =>
  ["vnc.html", "vnc_lite.html", "core/rfb.js", "app/ui.js"].every((f) =>
    fs.existsSync(path.join(d, f))
  )
);
const xvnc = XVNC_BINS.find((f) => fs.existsSync(f));
const playwright = await import("playwright-core").catch(() => undefined);

/** Why the file checks cannot run, or false. */
const skipFiles: SkipIf = needs(
  `noVNC's files in ${NOVNC_DIRS}`,
  !!novncDir,
  "apt-get install novnc",
);
/** Why the browser tests cannot run, or false. */
const skipBrowser: SkipIf = skipFiles ||
  needs(
    `a TigerVNC server (${XVNC_BINS.join(" or ")})`,
    !!xvnc,
    "apt-get install tigervnc-standalone-server",
  ) ||
  needs(`Debian's Chromium at ${CHROMIUM}`, fs.existsSync(CHROMIUM), "apt-get install chromium") ||
  needs("playwright-core", playwright !== undefined, "npm ci");

/** An X display number with no lock file, or undefined. */
function freeDisplay(): number | undefined {
  for (let n = 40; n < 100; n++) {
    if (!fs.existsSync(`/tmp/.X${n}-lock`) && !fs.existsSync(`/tmp/.X11-unix/X${n}`)) return n;
  }
  return undefined;
}

/** A running Xvnc and its output so far. */
interface VncServer {
  readonly port: number;
  readonly display: number;
  readonly log: () => string;
  stop(): Promise<void>;
}

/** Stops `child`: SIGTERM, then SIGKILL after 5 s; bounded. */
async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const done = await within(5000, exited).then(() => true, () => false);
  if (!done) {
    child.kill("SIGKILL");
    await within(5000, exited).catch(() => {});
  }
}

/**
 * Starts TigerVNC on loopback only, without authentication, with the classic
 * X "weave" root window (-retro) so the framebuffer is not one flat colour.
 */
async function startXvnc(): Promise<VncServer> {
  let lastLog = "";
  for (let attempt = 0; attempt < 3; attempt++) {
    const display = freeDisplay();
    if (display === undefined) throw new Error("no free X display number in :40-:99");
    const port = await freePort();
    const child = spawn(xvnc!, [
      `:${display}`,
      ...["-rfbport", String(port), "-localhost", "-interface", "127.0.0.1"],
      ...["-SecurityTypes", "None", "-desktop", DESKTOP, "-retro"],
      ...["-geometry", `${WIDTH}x${HEIGHT}`, "-depth", "24"],
      ...["-nolisten", "tcp", "-nolisten", "unix"], // X clients: the abstract socket only
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (output += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (output += d));
    child.on("error", (e) => (output += `\nspawn error: ${e.message}`));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const server: VncServer = {
      port,
      display,
      log: () => output,
      stop: () => stopChild(child, exited),
    };
    const listening = `Listening for VNC connections on local interface(s), port ${port}`;
    const end = Date.now() + 10000;
    while (!output.includes(listening) && child.exitCode === null && child.signalCode === null) {
      if (Date.now() > end) break;
      await sleep(50);
    }
    if (output.includes(listening)) return server;
    await server.stop();
    lastLog = output;
  }
  throw new Error(`Xvnc did not start:\n${lastLog}`);
}

/** The base64 SHA-256 of a certificate's public key, for Chromium's SPKI allow list. */
function spkiHash(certFile: string): string {
  const pem = execFileSync("openssl", ["x509", "-in", certFile, "-noout", "-pubkey"], {
    encoding: "utf8",
  });
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
  return createHash("sha256").update(der).digest("base64");
}

/** What a page load did, for assertions and failure messages. */
interface PageRecord {
  readonly console: string[];
  readonly failed: string[];
  /** Requests sent that have neither finished nor failed. */
  readonly pending: Set<string>;
}

function record(page: Page): PageRecord {
  const rec: PageRecord = { console: [], failed: [], pending: new Set() };
  page.on("request", (r) => rec.pending.add(r.url()));
  page.on("requestfinished", (r) => rec.pending.delete(r.url()));
  page.on("requestfailed", (r) => rec.pending.delete(r.url()));
  page.on("console", (m) => rec.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => rec.console.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => rec.failed.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) rec.failed.push(`${r.url()}: HTTP ${r.status()}`);
  });
  return rec;
}

/** Resolves once noVNC's canvas is WIDTH x HEIGHT and shows the weave (light and dark pixels). */
async function waitForDesktop(page: Page): Promise<void> {
  await page.waitForFunction(
    ([w, h]) => {
      const canvas = document.querySelector("canvas");
      if (!canvas || canvas.width !== w || canvas.height !== h) return false;
      const { data } = canvas.getContext("2d")!.getImageData(0, 0, w, h);
      let light = 0;
      let dark = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] !== 255) continue;
        const sum = data[i]! + data[i + 1]! + data[i + 2]!;
        if (sum > 600) light++;
        else if (sum < 150) dark++;
      }
      return light > (w * h) / 10 && dark > (w * h) / 10;
    },
    [WIDTH, HEIGHT],
    { timeout: 15000, polling: 100 },
  );
}

/** One response read off a kept-alive connection. */
interface KeptResponse {
  readonly status: number;
  readonly connection: string;
  readonly length: number;
}

/**
 * Sends GETs for `paths` one after another on ONE connection (plain or TLS),
 * as a browser reuses a kept-alive connection, and returns the responses that
 * arrived and how the connection ended. Bounded: 5 s in all.
 */
function sequentialGets(
  port: number,
  paths: string[],
  ca?: string,
): Promise<{ responses: KeptResponse[]; end: string }> {
  return new Promise((resolve) => {
    const responses: KeptResponse[] = [];
    const sock: net.Socket = ca
      ? tls.connect({ port, host: "127.0.0.1", servername: "localhost", ca: fs.readFileSync(ca) })
      : net.connect({ port, host: "127.0.0.1" });
    let buf = Buffer.alloc(0);
    let sent = 0;
    const finish = (end: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ responses, end });
    };
    const timer = setTimeout(() => finish(`no response ${sent} within 5 s`), 5000);
    const send = () => {
      sock.write(`GET ${paths[sent++]} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    };
    sock.once(ca ? "secureConnect" : "connect", send);
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const headEnd = buf.indexOf("\r\n\r\n");
      if (headEnd < 0) return;
      const head = buf.subarray(0, headEnd).toString("latin1");
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < headEnd + 4 + length) return;
      buf = buf.subarray(headEnd + 4 + length);
      const connection = /\r\nconnection: *([^\r]*)/i.exec(head)?.[1]?.toLowerCase() ?? "";
      responses.push({ status: Number(head.split(" ")[1]), connection, length });
      if (connection === "close" || sent === paths.length) finish("done");
      else send();
    });
    sock.on("error", (e) => finish(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    sock.on("close", () => finish(`closed by the server after ${responses.length} responses`));
  });
}

describe("noVNC's files through --web", { skip: skipFiles }, () => {
  let certs: Certs | undefined;
  let proxy: Websockify | undefined;
  const cleanup = async () => {
    const [p, c] = [proxy, certs];
    [proxy, certs] = [undefined, undefined];
    await within(10000, p?.close() ?? Promise.resolve(), "proxy close").catch(() => {});
    c?.remove();
  };
  before(async () => {
    try {
      certs = makeCerts();
      proxy = await startProxy("127.0.0.1:1", { web: novncDir, tls: { cert: certs.combined } });
    } catch (error) {
      await cleanup();
      throw error;
    }
  });
  after(cleanup);

  const types: [string, RegExp][] = [
    ["/vnc.html", /^text\/html\b/],
    ["/vnc_lite.html", /^text\/html\b/],
    ["/core/rfb.js", /^text\/javascript\b/],
    ["/core/util/browser.js", /^text\/javascript\b/],
    ["/app/ui.js", /^text\/javascript\b/],
    ["/vendor/pako/lib/zlib/inflate.js", /^text\/javascript\b/],
    ["/app/styles/base.css", /^text\/css\b/],
    ["/app/images/connect.svg", /^image\/svg\+xml\b/],
  ];
  test("ES modules are text/javascript, styles text/css, icons image/svg+xml", async () => {
    for (const [file, type] of types) {
      const res = await httpGet(proxy!.addr.port, file);
      assert.equal(res.status, 200, file);
      assert.match(res.headers["content-type"] ?? "", type, file);
      const size = fs.statSync(path.join(novncDir!, file)).size;
      assert.equal(res.headers["content-length"], String(size), file);
    }
  });

  // Browsers reuse a connection the server left open; noVNC loads ~40 modules that way.
  for (const scheme of ["http", "https"] as const) {
    test(`${scheme}: a kept-alive connection serves the next request`, async () => {
      const paths = ["/core/util/int.js", "/core/input/domkeytable.js", "/core/util/browser.js"];
      const got = await sequentialGets(
        proxy!.addr.port,
        paths,
        scheme === "https" ? certs!.ca : undefined,
      );
      const said = got.responses.map((r) => `${r.status} Connection: ${r.connection}`);
      const last = got.responses.at(-1);
      // Either every request is answered, or the server said "Connection: close" first.
      assert.ok(
        got.responses.length === paths.length || last?.connection === "close",
        `${got.end}; responses: ${said.join(", ")}`,
      );
      assert.ok(got.responses.every((r) => r.status === 200), said.join(", "));
    });
  }
});

describe("noVNC in Chromium against TigerVNC", { skip: skipBrowser, timeout: 60000 }, () => {
  let tmp: string | undefined;
  let certs: Certs | undefined;
  let vnc: VncServer | undefined;
  let plain: Websockify | undefined;
  let secure: Websockify | undefined;
  let context: BrowserContext | undefined;
  const lines: string[] = [];
  const logger = createLogger({ write: (l) => lines.push(l) });
  const shots = process.env.NOVNC_SCREENSHOTS;

  /** Stops everything started so far; each step bounded and independent, safe to call twice. */
  const cleanup = async () => {
    const [c, p, s, v, k, t] = [context, plain, secure, vnc, certs, tmp];
    context = plain = secure = undefined;
    vnc = undefined;
    certs = undefined;
    tmp = undefined;
    await within(15000, c?.close() ?? Promise.resolve(), "chromium close").catch(() => {});
    await within(10000, p?.close() ?? Promise.resolve(), "proxy close").catch(() => {});
    await within(10000, s?.close() ?? Promise.resolve(), "proxy close").catch(() => {});
    await v?.stop();
    k?.remove();
    if (t) fs.rmSync(t, { recursive: true, force: true });
  };

  const start = async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-novnc-"));
    certs = makeCerts();
    vnc = await startXvnc();
    const target = `127.0.0.1:${vnc.port}`;
    plain = await startProxy(target, { web: novncDir, logger });
    secure = await startProxy(target, { web: novncDir, logger, tls: { cert: certs.combined } });
    // Only this test's certificate is accepted, by its key; nothing is ignored wholesale.
    context = await playwright!.chromium.launchPersistentContext(path.join(tmp, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${spkiHash(certs.cert)}`],
      artifactsDir: path.join(tmp, "artifacts"),
      viewport: { width: 1024, height: 768 },
      timeout: 20000,
    });
  };

  before(async () => {
    try {
      await start();
    } catch (error) {
      await cleanup();
      throw error;
    }
  });
  after(cleanup);

  const cases = [
    { page: "vnc.html", scheme: "http", status: `Connected (unencrypted) to ${DESKTOP}` },
    { page: "vnc_lite.html", scheme: "http", status: `Connected to ${DESKTOP}` },
    { page: "vnc.html", scheme: "https", status: `Connected (encrypted) to ${DESKTOP}` },
    { page: "vnc_lite.html", scheme: "https", status: `Connected to ${DESKTOP}` },
  ] as const;

  for (const { page: file, scheme, status } of cases) {
    const ws = scheme === "https" ? "wss://" : "ws://";
    test(`${file} over ${scheme} + ${ws} connects and shows the desktop`, async () => {
      const proxy = scheme === "https" ? secure! : plain!;
      const port = proxy.addr.port;
      const host = scheme === "https" ? "localhost" : "127.0.0.1";
      const query = file === "vnc.html"
        ? `autoconnect=true&host=${host}&port=${port}&path=websockify&resize=off` +
          `&encrypt=${scheme === "https" ? 1 : 0}`
        : `host=${host}&port=${port}&path=websockify`;
      const url = `${scheme}://${host}:${port}/${file}?${query}`;
      const from = lines.length;
      /** This page's session, as the proxy names it: "#7 127.0.0.1:50000 -> 127.0.0.1:5900". */
      let session: string | undefined;

      const page = await context!.newPage();
      const rec = record(page);
      const explain = () =>
        [
          `url: ${url}`,
          `console:\n  ${rec.console.join("\n  ")}`,
          `failed requests:\n  ${rec.failed.join("\n  ")}`,
          `unfinished requests:\n  ${[...rec.pending].join("\n  ")}`,
          `proxy log:\n  ${lines.join("\n  ")}`,
          `Xvnc log:\n${vnc!.log()}`,
        ].join("\n");
      try {
        await page.goto(url, { timeout: 10000 })
          .catch((e) => assert.fail(`${e.message}\n${explain()}`));
        const selector = file === "vnc.html" ? "#noVNC_status" : "#status";
        if (file === "vnc.html") {
          await page.waitForFunction(
            () => document.documentElement.classList.contains("noVNC_connected"),
            undefined,
            { timeout: 15000 },
          ).catch((e) => assert.fail(`${e.message}\n${explain()}`));
        } else {
          await page.waitForFunction(
            (s) => document.querySelector("#status")?.textContent === s,
            status,
            { timeout: 15000 },
          ).catch((e) => assert.fail(`${e.message}\n${explain()}`));
        }
        assert.equal(await page.textContent(selector), status, explain());
        await waitForDesktop(page).catch((e) => assert.fail(`${e.message}\n${explain()}`));
        const opens = lines.slice(from).filter((l) => l.includes(`: open (${ws}, protocol none)`));
        assert.equal(opens.length, 1, explain());
        session = / (#\d+ .*): open /.exec(opens[0]!)?.[1];
        assert.ok(session, opens[0]);
        const shot = await page.screenshot();
        assert.ok(shot.byteLength > 1000, "screenshot is not empty");
        if (shots) {
          fs.mkdirSync(shots, { recursive: true });
          fs.writeFileSync(path.join(shots, `novnc-${RUNTIME}-${scheme}-${file}.png`), shot);
        }
        // Debian's noVNC has no package.json (the version label); noVNC hides the label then.
        const missing = fs.existsSync(path.join(novncDir!, "package.json")) ? [] : ["package.json"];
        const failed = rec.failed.filter((f) =>
          !missing.some((m) => f.endsWith(`/${m}: HTTP 404`))
        );
        assert.deepEqual(failed, [], explain());
      } finally {
        await within(10000, page.close(), "page close").catch(() => {});
      }
      // Closing the page closes the WebSocket; the proxy ends the session and the VNC connection.
      const closedLine = () => lines.find((l) => l.includes(`${session}: closed `));
      await waitFor(() => closedLine() !== undefined, 10000, `end of session ${session}`);
      const bytes = /client->target (\d+) B, target->client (\d+) B/.exec(closedLine()!);
      assert.ok(bytes && Number(bytes[1]) > 0 && Number(bytes[2]) > 100, closedLine());
      assert.equal(proxy.sessions, 0);
    });
  }
});

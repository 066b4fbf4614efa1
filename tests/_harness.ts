/**
 * Test helpers shared by every suite: the runtime flag, real loopback TCP
 * targets, the proxy in-process or as a CLI child, and WebSocket clients.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import process from "node:process";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { RUNTIME } from "../adapters/runtime.ts";
import {
  type AuthPlugin,
  createLogger,
  type LoggerOptions,
  type Websockify,
  websockify,
  type WebsockifyOptions,
} from "../mod.ts";
import type { ConnInfo } from "../lib/types.ts";

/** The runtime running this suite: differences are flags, not suites. */
export { RUNTIME };

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** The absolute path of `program` on PATH, or undefined. */
export function which(program: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" }).trim() ||
      undefined;
  } catch {
    return undefined;
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Rejects if `promise` has not settled within `ms`. */
export function within<T>(ms: number, promise: Promise<T>, what = "operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` every 20 ms until it is true, for at most `ms`. */
export async function waitFor(check: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await sleep(20);
  }
}

/** A TCP server on loopback that records its connections. */
export interface TcpServer {
  readonly port: number;
  readonly sockets: net.Socket[];
  close(): Promise<void>;
}

/** Starts a TCP server; `onConnection` gets each socket (allowHalfOpen). */
export async function startTcpServer(
  onConnection: (sock: net.Socket) => void,
  host = "127.0.0.1",
): Promise<TcpServer> {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.push(sock);
    sock.on("error", () => {});
    onConnection(sock);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A TCP echo server that ends its side when the client does. */
export function startEchoServer(host = "127.0.0.1"): Promise<TcpServer> {
  return startTcpServer((sock) => sock.pipe(sock), host);
}

/** Starts the proxy in this process on 127.0.0.1 and a free port. */
export function startProxy(
  target: WebsockifyOptions["target"],
  options: Partial<WebsockifyOptions> = {},
): Promise<Websockify> {
  return websockify({ listen: { hostname: "127.0.0.1", port: 0 }, target, ...options });
}

/**
 * Opens a `ws` client (the one client that works on all three runtimes);
 * `path` may carry a query, such as `/?token=vm1`.
 */
export function openClient(
  port: number,
  protocols: string | string[] = [],
  host = "127.0.0.1",
  path = "/",
): Promise<WebSocket> {
  const url = `ws://${host.includes(":") ? `[${host}]` : host}:${port}${path}`;
  const ws = new WebSocket(url, protocols);
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** Resolves with the close code and reason of a `ws` client. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: 1006, reason: "" });
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/** Collects a `ws` client's binary messages until at least `bytes` arrived. */
export function receive(ws: WebSocket, bytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  return new Promise((resolve, reject) => {
    const onMessage = (data: Uint8Array) => {
      chunks.push(data);
      total += data.byteLength;
      if (total >= bytes) {
        ws.off("message", onMessage);
        resolve(new Uint8Array(Buffer.concat(chunks)));
      }
    };
    ws.on("message", onMessage);
    ws.once("close", () => reject(new Error(`closed after ${total} of ${bytes} bytes`)));
  });
}

/** Bytes 0..255 repeating, `n` long: easy to check for loss or reordering. */
export function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed) & 0xff;
  return out;
}

/** The command that runs `cli.ts` under the current runtime. */
export function cliCommand(): string[] {
  const cli = `${ROOT}cli.ts`;
  if (RUNTIME === "deno") return [process.execPath, "run", "-A", cli];
  if (RUNTIME === "bun") return [process.execPath, cli];
  return [process.execPath, "--import", "tsx", cli];
}

/** A CLI child process with its output so far. */
export interface CliProcess {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Settles with the exit code (or 128 + signal number). */
  readonly exited: Promise<number>;
  /** The port from the "Listen on" banner line. */
  port(): Promise<number>;
  kill(signal?: NodeJS.Signals): Promise<number>;
}

const SIGNALS: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** Spawns `websockify` with `args` under the current runtime. */
export function spawnCli(args: string[], env: Record<string, string> = {}): CliProcess {
  return spawnCommand([...cliCommand(), ...args], env);
}

/** A free loopback port (released before use: good enough for tests). */
export function freePort(): Promise<number> {
  const server = net.createServer();
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Spawns `command` (a program that runs `websockify` in the end, such as
 * {@link cliCommand} itself) from the repository root, collecting its output.
 */
export function spawnCommand(command: string[], env: Record<string, string> = {}): CliProcess {
  const [cmd, ...args] = command;
  const child = spawn(cmd!, args, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc: CliProcess = {
    child,
    stdout: "",
    stderr: "",
    exited: new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve(code ?? 128 + (SIGNALS[signal ?? ""] ?? 0)));
    }),
    async port() {
      await within(
        15000,
        new Promise<void>((resolve, reject) => {
          const check = () => /Listen on .*:(\d+)/.test(proc.stderr) && resolve();
          child.stderr!.on("data", check);
          child.once("exit", () => reject(new Error(`exited early: ${proc.stderr}`)));
          check();
        }),
        "proxy start",
      );
      return Number(/Listen on .*:(\d+)/.exec(proc.stderr)![1]);
    },
    kill(signal = "SIGTERM") {
      // process.kill, not child.kill: Deno then reports the signal, not the exit code.
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
      return proc.exited;
    },
  };
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (proc.stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (proc.stderr += d));
  return proc;
}

/** Runs `websockify` to completion and returns its exit code and output. */
export async function runCli(
  args: string[],
  ms = 15000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = spawnCli(args);
  const code = await within(ms, proc.exited, `websockify ${args.join(" ")}`).finally(() =>
    proc.kill("SIGKILL")
  );
  return { code, stdout: proc.stdout, stderr: proc.stderr };
}

/** A parsed HTTP response from {@link rawHttp}. */
export interface RawResponse {
  readonly status: number;
  /** The status line and headers, as sent. */
  readonly head: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Sends `request` as is over TCP (no URL clean-up) and reads until close. */
export function rawHttp(port: number, request: string, host = "127.0.0.1"): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let text = "";
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => (text += d));
    sock.on("error", reject);
    sock.on("close", () => {
      const end = text.indexOf("\r\n\r\n");
      const head = end < 0 ? text : text.slice(0, end);
      const headers: Record<string, string> = {};
      for (const line of head.split("\r\n").slice(1)) {
        const i = line.indexOf(":");
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      const status = Number(head.split(" ")[1]);
      resolve({ status, head, headers, body: end < 0 ? "" : text.slice(end + 4) });
    });
    sock.write(request);
  });
}

/** A GET (or other method) with `Connection: close`, path sent verbatim. */
export function httpGet(
  port: number,
  path: string,
  { method = "GET", headers = {} }: { method?: string; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  return rawHttp(
    port,
    `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${extra}\r\n`,
  );
}

/** An echo target and a proxy to it, started around the enclosing suite. */
export interface EchoProxy {
  readonly echo: TcpServer;
  readonly proxy: Websockify;
  /** The proxy's port. */
  readonly port: number;
}

/** Registers before/after hooks that start and stop an {@link EchoProxy}. */
export function useEchoProxy(options: Partial<WebsockifyOptions> = {}): EchoProxy {
  let echo: TcpServer | undefined;
  let proxy: Websockify | undefined;
  before(async () => {
    echo = await startEchoServer();
    proxy = await startProxy(`127.0.0.1:${echo.port}`, options);
  });
  after(async () => {
    await proxy?.close();
    await echo?.close();
  });
  return {
    get echo() {
      return echo!;
    },
    get proxy() {
      return proxy!;
    },
    get port() {
      return proxy!.addr.port;
    },
  };
}

/** Asserts a startup failure: exactly one error line, exit 1. */
export function assertStartError(result: { code: number; stderr: string }, message: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0]!, /^websockify: error: /);
  assert.match(lines[0]!, message);
}

/**
 * True while process `pid` runs. A zombie counts as gone, since an orphan's
 * new parent may be slow to reap it, but only once its last thread is gone:
 * the leader of a thread group turns Z while the others still exit (and
 * hold its sockets).
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as { code?: unknown }).code === "EPERM";
  }
  try {
    // The state follows the parenthesised command name.
    const zombie = /\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
    return !zombie || fs.readdirSync(`/proc/${pid}/task`).length > 1;
  } catch (error) {
    return (error as { code?: unknown }).code !== "ENOENT"; // gone just now; else no /proc
  }
}

/** What {@link withRecordingProxy} recorded: log lines, and the client each auth call saw. */
export interface Recorded {
  readonly lines: string[];
  readonly seen: ConnInfo[];
}

/**
 * Runs `run` with a proxy to `target` that records its log lines (written
 * as `log` says) and what its auth plugin receives; stops it after.
 */
export async function withRecordingProxy(
  target: WebsockifyOptions["target"],
  options: Partial<WebsockifyOptions>,
  log: Omit<LoggerOptions, "write">,
  run: (port: number, recorded: Recorded) => Promise<void>,
): Promise<void> {
  const recorded: Recorded = { lines: [], seen: [] };
  const authPlugin: AuthPlugin = { authenticate: ({ client }) => void recorded.seen.push(client) };
  const proxy = await startProxy(target, {
    authPlugin,
    logger: createLogger({ ...log, write: (line) => recorded.lines.push(line) }),
    ...options,
  });
  try {
    await run(proxy.addr.port, recorded);
  } finally {
    await proxy.close();
  }
}

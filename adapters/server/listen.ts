/**
 * The server on `node:net` + `node:http`, shared by Deno, Bun and Node: the
 * one stack that behaves the same on all three (`docs/runtimes.md`, "One
 * server stack"). Plain
 * requests go to the Hono app through `node:http`; upgrades are decided by
 * the same app and then answered by `ws_conn.ts`. An upgrade that arrives
 * whole in a plain connection's first bytes (every browser's) skips
 * `node:http`; TLS connections and everything else go through it.
 *
 * @module
 */
import dns from "node:dns/promises";
import http from "node:http";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import { dirname, join } from "node:path";
import process from "node:process";
import type { Duplex } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import type tls from "node:tls";
import { type Logger, SILENT_LOGGER } from "../../lib/log.ts";
import { classifyFirstBytes, POLICY_RESPONSE } from "../../lib/protocol/sniff.ts";
import { clientLabel } from "../../lib/target.ts";
import { parseUpgradeHead } from "../../lib/protocol/upgrade_head.ts";
import { requestUrl } from "../../lib/protocol/host.ts";
import type { ConnInfo, Listener, NetAddr, ServerHandlers, Target } from "../../lib/types.ts";
import {
  FIRST_BYTE_TIMEOUT_MS,
  HANDSHAKE_TIMEOUT_MS,
  SHORT_BODY_BYTES,
  UNIX_PROBE_MS,
} from "../../lib/limits.ts";
import { clientCertRefusal, createTlsServer, tlsErrorText, type TlsOptions } from "./tls.ts";
import { acceptWebSocket } from "./ws_conn.ts";

/** Where to listen: a TCP address, a unix socket path, or an inherited fd. */
export type ListenAt =
  | {
    /** Host name or address; empty means every address. */
    readonly hostname: string;
    readonly port: number;
    /** Prefer IPv6 when resolving `hostname` (`-6`). */
    readonly preferIpv6?: boolean;
    /** Share the port with other processes (SO_REUSEPORT; Deno and Bun). */
    readonly reusePort?: boolean;
  }
  | { readonly path: string; readonly mode?: number }
  | { readonly fd: number };

/** Options for {@link listenNode}. */
export interface ListenOptions {
  readonly at: ListenAt;
  /** Serve TLS on the same port; the first byte tells which. */
  readonly tls?: TlsOptions;
  /** Refuse connections that do not start TLS; implied by `tls.verifyClient`. */
  readonly sslOnly?: boolean;
  /**
   * How long a connection may take to become a WebSocket session or to send
   * a whole request head (again after each answer); 0 is no limit.
   */
  readonly handshakeTimeoutMs?: number;
  readonly log?: Logger;
}

/** Resolves a host name to one address, IPv4 first unless `preferIpv6`. */
export async function resolveHost(hostname: string, preferIpv6 = false): Promise<string> {
  if (hostname === "") return preferIpv6 ? "::" : "0.0.0.0";
  if (net.isIP(hostname)) return hostname;
  const all = await dns.lookup(hostname, { all: true });
  const first = preferIpv6 ? 6 : 4;
  return (all.find((a) => a.family === first) ?? all[0]!).address;
}

/**
 * Listens for HTTP and WebSocket clients and drives `handlers`.
 *
 * @example
 * ```ts
 * import { listenNode } from "./listen.ts";
 *
 * const listener = await listenNode({ at: { hostname: "127.0.0.1", port: 0 } }, {
 *   fetch: () => new Response("hello\n"),
 *   open: (ws) => ws.close(1000, "bye"),
 * });
 * console.log(listener.addr.port);
 * await listener.close();
 * ```
 */
export async function listenNode(
  options: ListenOptions,
  handlers: ServerHandlers,
): Promise<Listener> {
  const infos = new WeakMap<object, ConnInfo>();
  const sockets = new Set<net.Socket>();
  // Connections not (yet) WebSocket sessions, by id: a TLS socket has its own info object.
  const deadlines = new Map<number, Deadline>();
  const deadlineOf = (sock: object) => deadlines.get(infos.get(sock)?.id ?? 0);
  const handshakeMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  let nextId = 1;

  const httpServer = http.createServer(
    getRequestListener((req, env) =>
      handlers.fetch(req, { info: infos.get(env.incoming.socket)! })
    ),
  );
  // A request head is whole: the deadline waits for its answer, then for the next head.
  httpServer.prependListener("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const deadline = deadlineOf(req.socket);
    deadline?.busy();
    if (deadline) res.once("finish", () => deadline.idle());
  });
  // Sockets arrive by emit("connection"), so this server never listens; Deno's
  // node:http then closes every keep-alive socket after one response
  // (`docs/runtimes.md`, "Deno: node:http that never listens").
  Object.defineProperty(httpServer, "listening", { get: () => true });
  /** Lets the app decide on an upgrade; `head` is what followed the request head. */
  const upgrade = (
    socket: Duplex,
    request: () => Request,
    websocket: boolean,
    head: Uint8Array,
    info: ConnInfo,
    release?: () => void,
  ) => {
    let accepted: { protocol: string; target: Target } | undefined;
    let req: Request;
    const deadline = deadlines.get(info.id);
    // Another protocol (h2c, ...) is a plain request, as upstream has it.
    const accept = websocket
      ? (protocol: string, target: Target) => (accepted = { protocol, target })
      : undefined;
    Promise.resolve()
      .then(() => handlers.fetch(req = request(), { info, accept }))
      .then((res) => {
        if (!accepted) return answer(socket, res, deadline);
        if (!socket.readable || !socket.writable) return void socket.destroy();
        deadline?.stop();
        deadlines.delete(info.id);
        const { protocol, target } = accepted;
        const key = req.headers.get("sec-websocket-key")!;
        // The session owns the socket now, and a TLS one the raw socket under
        // it: closing the listener (--timeout, shutdown) must not cut either.
        sockets.delete(rawSocket(socket));
        handlers.open(acceptWebSocket(socket as net.Socket, key, protocol, head), target, info);
        release?.();
        socket.resume();
      })
      .catch(() => answer(socket, new Response("Bad request", { status: 400 }), deadline));
  };
  httpServer.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", destroySelf);
    const websocket = req.headers.upgrade?.toLowerCase() === "websocket";
    upgrade(socket, () => toRequest(req), websocket, head, infos.get(socket)!);
  });
  /** Hands a connection to the HTTP server with the bytes read so far put back. */
  const serveHttp = (sock: net.Socket, first: Uint8Array, release: () => void) => {
    sock.unshift(first);
    httpServer.emit("connection", sock);
    release();
    // Deno and Bun need the resume after the new owner has attached.
    process.nextTick(() => sock.resume());
  };

  const log = options.log ?? SILENT_LOGGER;
  // A client certificate is only asked for over TLS: plain clients would skip it.
  const sslOnly = options.sslOnly || (options.tls?.verifyClient ?? false);
  const tlsServer = options.tls && createTlsServer(options.tls);
  // A TLS socket wraps the sniffed one, whose info is known from the start.
  const infoOf = (sock: tls.TLSSocket) => infos.get(rawSocket(sock))!;
  tlsServer?.on("secureConnection", (sock: tls.TLSSocket) => {
    const info = infoOf(sock);
    const refused = options.tls?.verifyClient ? clientCertRefusal(sock) : undefined;
    if (refused) {
      log.info(`${clientLabel(info)}: TLS error: ${refused}`);
      return void sock.destroy();
    }
    const cn = sock.authorized ? sock.getPeerCertificate().subject?.CN : undefined;
    const peerCn = Array.isArray(cn) ? cn[0] : cn;
    infos.set(sock, { ...info, tls: true, peerCn });
    deadlines.get(info.id)?.sockets.push(sock);
    httpServer.emit("connection", sock);
  });
  tlsServer?.on("tlsClientError", (error: Error, sock: tls.TLSSocket) => {
    const info = infoOf(sock);
    log.info(`${clientLabel(info)}: TLS error: ${tlsErrorText(error)}`);
  });

  const route = (sock: net.Socket, info: ConnInfo, first: Uint8Array, release: () => void) => {
    const client = clientLabel(info);
    const kind = classifyFirstBytes(first);
    if (kind === "policy") {
      log.info(`${client}: Sending flash policy response`);
      sock.end(POLICY_RESPONSE);
      sock.resume();
    } else if (kind === "tls" && tlsServer) {
      sock.unshift(first);
      tlsServer.emit("connection", sock);
      release();
      process.nextTick(() => sock.resume());
    } else if (kind === "tls") {
      log.info(`${client}: SSL connection but no certificate is configured`);
      sock.destroy();
    } else if (sslOnly) {
      log.info(`${client}: non-SSL connection received but disallowed`);
      sock.destroy();
    } else {
      // A whole WebSocket upgrade in the first bytes needs no HTTP server.
      const head = parseUpgradeHead(first);
      if (!head) return serveHttp(sock, first, release);
      const request = () =>
        new Request(requestUrl(head.host, head.path), { method: "GET", headers: head.headers });
      upgrade(sock, request, true, first.subarray(head.length), info, release);
    }
  };

  let connections = 0;
  // allowHalfOpen as http.Server has it: http and ws end the socket themselves.
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    connections++;
    const info: ConnInfo = { id: nextId++, remote: remoteOf(sock, options.at), tls: false };
    const deadline = new Deadline(sock, handshakeMs);
    deadlines.set(info.id, deadline);
    sock.once("close", () => {
      sockets.delete(sock);
      connections--;
      deadlines.get(info.id)?.stop();
      deadlines.delete(info.id);
    });
    sock.on("error", destroySelf);
    if (!("path" in options.at)) sock.setNoDelay(true);
    infos.set(sock, info);
    sniff(sock, deadline, (first, release) => route(sock, info, first, release));
  });
  const addr = await bind(server, options.at);
  return {
    addr,
    get connections() {
      return connections;
    },
    close() {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const sock of sockets) sock.destroy();
      return stopped;
    },
  };
}

/**
 * Reads until the first bytes say what the connection speaks, pauses and
 * calls `decide`, which owns the socket and the bytes from then on. A client
 * that sends nothing in time is dropped. The new owner calls `release` once
 * it has its own `data` listener: removing ours while it is the only one
 * would delete the event's slot and put the socket's listener table in
 * dictionary mode for the session's life (`bench/README.md`, "Figures behind
 * design choices").
 */
function sniff(
  sock: net.Socket,
  deadline: Deadline,
  decide: (first: Uint8Array, release: () => void) => void,
): void {
  let first: Uint8Array = new Uint8Array(0);
  let decided = false;
  const onData = (chunk: Uint8Array) => {
    if (decided) return;
    first = first.length ? Buffer.concat([first, chunk]) : chunk;
    if (classifyFirstBytes(first) === "more") return;
    decided = true;
    deadline.firstBytes();
    sock.pause();
    const bytes = first;
    first = EMPTY;
    decide(bytes, () => sock.off("data", onData));
  };
  sock.on("data", onData);
  sock.resume();
}

/**
 * One connection's time limit until it is a WebSocket session: its first
 * bytes within {@link FIRST_BYTE_TIMEOUT_MS}, its 101 or a whole request head
 * within `ms` of the accept, and after each HTTP answer the next head within
 * `ms` again. Past it, the connection's sockets (TCP, then TLS) are destroyed.
 */
class Deadline {
  readonly sockets: Duplex[];
  readonly #ms: number;
  readonly #start = Date.now();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Requests being answered. */
  #answering = 0;

  constructor(sock: Duplex, ms: number) {
    this.sockets = [sock];
    this.#ms = ms;
    this.#arm(ms > 0 ? Math.min(ms, FIRST_BYTE_TIMEOUT_MS) : FIRST_BYTE_TIMEOUT_MS);
  }

  /** The first bytes arrived: what is left of `ms` since the accept. */
  firstBytes(): void {
    if (this.#ms > 0) this.#arm(this.#start + this.#ms - Date.now());
    else this.stop();
  }

  /** A request is being answered: no limit until the answer is written. */
  busy(): void {
    this.#answering++;
    this.stop();
  }

  /** An answer is written: the next request head has `ms`. */
  idle(): void {
    if (--this.#answering === 0 && this.#ms > 0) this.#arm(this.#ms);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      for (const sock of this.sockets) sock.destroy();
    }, Math.max(ms, 0));
  }
}

const EMPTY = new Uint8Array(0);

/**
 * The accepted socket under a TLS one (`_parent` on every runtime's
 * `TLSSocket`), or the socket itself.
 */
function rawSocket(sock: Duplex): net.Socket {
  return ((sock as { _parent?: net.Socket })._parent ?? sock) as net.Socket;
}

/** The client's address; on a unix socket, the socket's path. */
function remoteOf(sock: net.Socket, at?: ListenAt): NetAddr {
  if (at && "path" in at) return { hostname: at.path, port: 0 };
  return { hostname: sock.remoteAddress ?? "", port: sock.remotePort ?? 0 };
}

/**
 * Starts listening. A unix socket gets its mode before any client can
 * connect (umask), as upstream; see {@link bindUnix} for its path.
 */
async function bind(server: net.Server, at: ListenAt): Promise<NetAddr> {
  let restoreUmask: (() => void) | undefined;
  let listen: net.ListenOptions;
  let temp: string | undefined;
  // An inherited listening socket (`--inetd`); the types only know `handle`.
  if ("fd" in at) listen = { fd: at.fd } as net.ListenOptions;
  else if ("path" in at) {
    await claimSocketPath(at.path);
    temp = join(dirname(at.path), `.websockify-${process.pid}-${++unixBinds}.sock`);
    await fsp.rm(temp, { force: true });
    const old = process.umask(0o777 & ~(at.mode ?? 0o600));
    restoreUmask = () => process.umask(old);
    listen = { path: temp, backlog: 100 };
  } else {
    const host = await resolveHost(at.hostname, at.preferIpv6);
    // reusePort is newer than Node 20's types; Deno and Bun honour it.
    listen = { host, port: at.port, backlog: 511, reusePort: at.reusePort } as net.ListenOptions;
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } finally {
    restoreUmask?.();
  }
  if ("path" in at) {
    await bindUnix(server, temp!, at.path);
    return { hostname: at.path, port: 0 };
  }
  const bound = server.address() as net.AddressInfo;
  return { hostname: bound.address, port: bound.port };
}

/** Numbers this process's unix socket binds, for unique temporary names. */
let unixBinds = 0;

/**
 * Makes way for a unix socket at `file`: nothing there is fine, a stale
 * socket (connection refused) is removed; anything else throws, since a
 * regular file must not be lost and a live socket belongs to another server.
 */
async function claimSocketPath(file: string): Promise<void> {
  const stat = await fsp.lstat(file).catch((error) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (!stat) return;
  if (!stat.isSocket()) throw new Error("not a socket");
  const inUse = await new Promise<boolean>((resolve, reject) => {
    const sock = net.connect({ path: file });
    const done = (result: boolean | Error) => {
      clearTimeout(timer);
      sock.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    // No answer in time: something holds it that we must not take over.
    const timer = setTimeout(() => done(true), UNIX_PROBE_MS);
    sock.once("connect", () => done(true));
    sock.once("error", (error: NodeJS.ErrnoException) => {
      const stale = error.code === "ECONNREFUSED" || error.code === "ENOENT";
      done(stale ? false : error.code === "EAGAIN" ? true : error);
    });
  });
  if (inUse) throw Object.assign(new Error(`${file} is in use`), { code: "EADDRINUSE" });
  await fsp.rm(file, { force: true });
}

/**
 * Puts the socket bound at `temp` at `file` with link(), which fails if
 * something appeared there since {@link claimSocketPath}, and removes the
 * socket when the server closes or the process exits only while the path
 * still holds this very socket. Node unlinks the path it bound on close,
 * which is why the server binds `temp` and not `file`.
 */
async function bindUnix(server: net.Server, temp: string, file: string): Promise<void> {
  try {
    await fsp.link(temp, file);
  } catch (error) {
    server.close();
    throw (error as { code?: unknown }).code === "EEXIST"
      ? Object.assign(new Error(`${file} is in use`), { code: "EADDRINUSE" })
      : error;
  } finally {
    await fsp.rm(temp, { force: true });
  }
  const { dev, ino } = await fsp.lstat(file);
  const removeIfOurs = () => {
    try {
      const now = fs.lstatSync(file);
      if (now.dev === dev && now.ino === ino) fs.rmSync(file);
    } catch { /* gone already */ }
  };
  const onClose = () => {
    process.off("exit", removeIfOurs);
    removeIfOurs();
  };
  server.once("close", onClose);
  process.once("exit", removeIfOurs);
}

/**
 * Builds a fetch `Request` from an upgrade request's head. Header pairs and a
 * URL string, not `Headers` and `URL` objects: Deno converts those field by
 * field, several times slower (`bench/README.md`, "Figures behind design
 * choices").
 */
function toRequest(req: http.IncomingMessage): Request {
  const raw = req.rawHeaders;
  const headers: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) headers.push([raw[i]!, raw[i + 1]!]);
  return new Request(requestUrl(req.headers.host, req.url ?? "/"), {
    method: req.method,
    headers,
  });
}

/**
 * Answers an upgrade request that was not accepted (a refusal, or another
 * protocol's upgrade served as a plain request) on the raw socket and ends
 * it; the deadline then waits for the client's FIN.
 */
async function answer(socket: Duplex, res: Response, deadline?: Deadline): Promise<void> {
  deadline?.busy();
  try {
    await writeResponse(socket, res);
  } catch {
    socket.destroy();
  } finally {
    deadline?.idle();
  }
}

/**
 * Writes `res` with `Connection: close`. The body (a `--web` file can be
 * large) is streamed as the socket drains, never read whole.
 */
async function writeResponse(socket: Duplex, res: Response): Promise<void> {
  const reason = res.statusText || http.STATUS_CODES[res.status] || "";
  let head = `HTTP/1.1 ${res.status} ${reason}\r\n`;
  res.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection") head += `${name}: ${value}\r\n`;
  });
  let length = res.headers.get("content-length");
  const reader = res.body?.getReader();
  const first: Uint8Array[] = [];
  let done = !reader;
  if (length === null) {
    let size = 0;
    while (!done && size < SHORT_BODY_BYTES) {
      const chunk = await reader!.read();
      if (chunk.done) done = true;
      else size += first[first.push(chunk.value) - 1]!.byteLength;
    }
    if (done) length = String(size);
  }
  // Without a length the body ends with the connection.
  if (length !== null) head += `Content-Length: ${length}\r\n`;
  head += "Connection: close\r\n\r\n";
  socket.resume(); // on to the client's FIN; what else it sends is dropped
  let ready = socket.write(Buffer.concat([Buffer.from(head, "latin1"), ...first]));
  while (!done) {
    if (!ready) await drained(socket);
    if (socket.destroyed) return void await reader!.cancel();
    const chunk = await reader!.read();
    if (chunk.done) break;
    ready = socket.write(chunk.value);
  }
  socket.end();
}

/** Resolves when `socket` can take more bytes or is gone. */
function drained(socket: Duplex): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}

// A shared listener: a closure here would keep its request alive as long as
// the socket (V8 shares one context among a function's closures).
function destroySelf(this: Duplex): void {
  this.destroy();
}

/**
 * The server on `node:net` + `node:http`, shared by Deno, Bun and Node: the
 * one stack that behaves the same on all three (`docs/runtimes.md`, "One
 * server stack"). Plain requests go to the
 * Hono app through `node:http`; on an upgrade the app returns a decision,
 * and an accepted one is answered by `ws_conn.ts`. An upgrade that arrives
 * whole in a plain connection's first bytes (every browser's) skips
 * `node:http`; TLS connections and everything else go through it.
 *
 * @module
 */
import http from "node:http";
import net from "node:net";
import process from "node:process";
import type { Duplex } from "node:stream";
import type tls from "node:tls";
import { type Logger, SILENT_LOGGER } from "../../lib/log.ts";
import { classifyFirstBytes, POLICY_RESPONSE } from "../../lib/protocol/sniff.ts";
import { clientLabel } from "../../lib/target.ts";
import {
  HeadRequest,
  parseUpgradeHead,
  upgradeRequestOf,
} from "../../lib/protocol/upgrade_head.ts";
import { requestUrl } from "../../lib/protocol/host.ts";
import type {
  ConnInfo,
  Listener,
  NetAddr,
  ServerHandlers,
  UpgradeDecision,
  UpgradeRequest,
} from "../../lib/types.ts";
import { HANDSHAKE_TIMEOUT_MS } from "../../lib/limits.ts";
import { bind, type ListenAt, releaseInherited } from "./bind.ts";
import { HandshakeDeadline } from "./deadline.ts";
import { answer, toRequest } from "./respond.ts";
import { clientCertRefusal, createTlsServer, tlsErrorText, type TlsOptions } from "./tls.ts";
import { acceptWebSocket } from "./ws_conn.ts";
import { type ProxyHeader, readProxyHeader } from "./proxy_header.ts";

export { type ListenAt, resolveHost } from "./bind.ts";

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
  /**
   * Every connection starts with a PROXY protocol header (`--proxy-protocol`),
   * which names the client; one without a valid header is closed.
   */
  readonly proxyProtocol?: boolean;
  /** Fill `ConnInfo.local` for every connection (`--target-proxy-protocol`). */
  readonly local?: boolean;
  readonly log?: Logger;
  /**
   * Told the status of every refused upgrade (`--metrics`): every refusal
   * passes here, whoever decided it.
   */
  readonly onRefuse?: (status: number) => void;
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
 *   upgrade: () =>
 *     Promise.resolve({ kind: "refuse", response: new Response(null, { status: 403 }) }),
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
  const log = options.log ?? SILENT_LOGGER;
  const handshakeMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const { onRefuse } = options;
  // Each connection's info by socket: the accepted one, and the TLS socket
  // over it, whose info adds `tls` and `peerCn`.
  const infos = new WeakMap<object, ConnInfo>();
  // Accepted sockets that are not (yet) WebSocket sessions, with their deadlines.
  const pending = new Map<net.Socket, HandshakeDeadline>();
  let nextId = 1;

  // Loaded on the first plain request: on Node, importing @hono/node-server
  // loads undici, 2 MiB of heap that every full collection then marks, which
  // a proxy serving only WebSockets never uses (`bench/README.md`, "Issue 16:
  // throughput, third round").
  let serve: Promise<http.RequestListener> | undefined;
  const httpServer = http.createServer((req, res) => {
    serve ??= honoListener(handlers, infos);
    serve.then((listener) => listener(req, res)).catch(() => res.destroy());
  });
  // A request head is whole: the deadline waits for its answer, then for the next head.
  httpServer.prependListener("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const deadline = pending.get(rawSocket(req.socket));
    deadline?.busy();
    if (deadline) res.once("finish", () => deadline.idle());
  });
  // Sockets arrive by emit("connection"), so this server never listens; Deno's
  // node:http then closes every keep-alive socket after one response
  // (`docs/runtimes.md`, "Deno: node:http that never listens"). It only
  // reads the flag.
  Object.defineProperty(httpServer, "listening", { get: () => true });
  /** Answers an upgrade request that could not be read or decided. */
  const badRequest = (socket: Duplex, deadline: HandshakeDeadline | undefined): void => {
    onRefuse?.(400);
    void answer(socket, new Response("Bad request", { status: 400 }), deadline);
  };
  /**
   * Asks the app about an upgrade and acts on its decision, at once when the
   * app decided at once; `head` is what followed the request head.
   */
  const upgrade = (
    socket: Duplex,
    req: UpgradeRequest,
    websocket: boolean,
    head: Uint8Array,
    info: ConnInfo,
    sniffer?: Sniffer,
  ): void => {
    const deadline = pending.get(rawSocket(socket));
    let decision;
    try {
      // Another protocol (h2c, ...) is a plain request, as upstream has it.
      decision = websocket
        ? handlers.upgrade(req, info)
        : refusedWith(handlers.fetch(req.request(), { info }));
    } catch {
      return badRequest(socket, deadline);
    }
    if (!(decision instanceof Promise)) {
      return act(socket, decision, req, head, info, deadline, sniffer);
    }
    decision.then(
      (decided) => act(socket, decided, req, head, info, deadline, sniffer),
      () => badRequest(socket, deadline),
    );
  };
  const act = (
    socket: Duplex,
    decision: UpgradeDecision,
    req: UpgradeRequest,
    head: Uint8Array,
    info: ConnInfo,
    deadline: HandshakeDeadline | undefined,
    sniffer: Sniffer | undefined,
  ): void => {
    if (decision.kind === "refuse") {
      onRefuse?.(decision.response.status);
      return void answer(socket, decision.response, deadline);
    }
    if (!socket.readable || !socket.writable) {
      decision.release?.();
      return void socket.destroy();
    }
    // The session owns the socket now, and a TLS one the raw socket under
    // it: no deadline, and closing the listener (--timeout, shutdown) must
    // not cut either.
    deadline?.stop();
    pending.delete(rawSocket(socket));
    let ws;
    try {
      const key = req.headers.get("sec-websocket-key")!;
      ws = acceptWebSocket(socket as net.Socket, key, decision.protocol, head);
    } catch {
      decision.release?.();
      return badRequest(socket, deadline);
    }
    try {
      handlers.open(ws, decision.target, decision.info ?? info, decision.token, decision.release);
    } catch {
      return badRequest(socket, deadline);
    }
    if (sniffer) socket.off("data", sniffer);
    socket.resume();
  };
  httpServer.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", destroySelf);
    let request;
    try {
      request = toRequest(req);
    } catch {
      return badRequest(socket, pending.get(rawSocket(socket)));
    }
    const websocket = req.headers.upgrade?.toLowerCase() === "websocket";
    upgrade(socket, upgradeRequestOf(request), websocket, head, infos.get(socket)!);
  });
  // The last Host header whose URL parsed: clients send the same one again.
  let goodHost: string | undefined;
  /** The URL of a parsed head; throws for a Host a `Request` would refuse. */
  const urlOf = (host: string | undefined, path: string): string => {
    const url = requestUrl(host, path);
    if (host !== goodHost) {
      new URL(url);
      goodHost = host;
    }
    return url;
  };
  /**
   * Hands an accepted socket to `server` as if that had accepted it, with
   * the first bytes put back: they were read here to tell what it speaks.
   */
  const handOver = (
    server: net.Server,
    sock: net.Socket,
    first: Uint8Array,
    sniffer: Sniffer,
  ) => {
    sock.unshift(first);
    server.emit("connection", sock);
    sock.off("data", sniffer);
    // Deno and Bun need the resume after the new owner has attached.
    process.nextTick(() => sock.resume());
  };

  // TLS: a socket that starts with a TLS handshake is handed to `tlsServer`,
  // which never listens, and its decrypted socket to `httpServer` in turn.
  // A client certificate is only asked for over TLS: plain clients would skip it.
  const sslOnly = options.sslOnly || (options.tls?.verifyClient ?? false);
  const tlsFiles = options.tls && createTlsServer(options.tls);
  const tlsServer = tlsFiles?.server;
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
    pending.get(rawSocket(sock))?.add(sock);
    httpServer.emit("connection", sock);
  });
  tlsServer?.on("tlsClientError", (error: Error, sock: tls.TLSSocket) => {
    const info = infoOf(sock);
    log.info(`${clientLabel(info)}: TLS error: ${tlsErrorText(error)}`);
  });

  const route = (sock: net.Socket, first: Uint8Array, sniffer: Sniffer) => {
    const info = infos.get(sock)!;
    const client = clientLabel(info);
    const kind = classifyFirstBytes(first);
    if (kind === "policy") {
      log.info(`${client}: Sending flash policy response`);
      sock.end(POLICY_RESPONSE);
      sock.resume();
    } else if (kind === "tls" && tlsServer) {
      handOver(tlsServer, sock, first, sniffer);
    } else if (kind === "tls") {
      log.info(`${client}: SSL connection but no certificate is configured`);
      sock.destroy();
    } else if (sslOnly) {
      log.info(`${client}: non-SSL connection received but disallowed`);
      sock.destroy();
    } else {
      // A whole WebSocket upgrade in the first bytes needs no HTTP server.
      const head = parseUpgradeHead(first);
      if (!head) return handOver(httpServer, sock, first, sniffer);
      let url;
      try {
        url = urlOf(head.host, head.path);
      } catch {
        return badRequest(sock, pending.get(sock));
      }
      upgrade(sock, new HeadRequest(head, url), true, first.subarray(head.length), info, sniffer);
    }
  };

  let connections = 0;
  // allowHalfOpen as http.Server has it: http and ws end the socket themselves.
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (sock) => {
    connections++;
    const remote = remoteOf(sock, options.at);
    const info: ConnInfo = options.local
      ? { id: nextId++, remote, tls: false, local: localOf(sock, options.at) }
      : { id: nextId++, remote, tls: false };
    const deadline = new HandshakeDeadline(sock, handshakeMs);
    pending.set(sock, deadline);
    sock.on("close", onClose);
    sock.on("error", destroySelf);
    if (noDelay) sock.setNoDelay(true);
    infos.set(sock, info);
    sniff(sock, deadline, route, proxied);
  });
  const noDelay = !("path" in options.at);
  // Shared, not a closure per connection: it lives as long as the session.
  function onClose(this: net.Socket): void {
    connections--;
    pending.get(this)?.stop();
    pending.delete(this);
  }
  /** Takes the client from a connection's PROXY header, or closes one without. */
  const proxied = options.proxyProtocol
    ? (sock: net.Socket, header: ProxyHeader): void => {
      const info = infos.get(sock)!;
      if (header.kind === "more") return;
      if (header.kind === "invalid") {
        log.info(`${clientLabel(info)}: PROXY protocol: ${header.reason}`);
        return void sock.destroy();
      }
      if (header.source) {
        infos.set(sock, {
          ...info,
          remote: header.source,
          peer: info.remote,
          local: header.destination ?? info.local,
        });
      }
    }
    : undefined;
  const addr = await bind(server, options.at);
  let stopped: Promise<void> | undefined;
  return {
    addr,
    get connections() {
      return connections;
    },
    prepareTlsReload: tlsFiles?.prepareReload,
    close() {
      // Once: a second server.close() after "close" was emitted would never call back.
      if (!stopped) {
        stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        releaseInherited(options.at);
      }
      for (const sock of pending.keys()) sock.destroy();
      return stopped;
    },
  };
}

/** `node:http`'s handler for the app's plain requests. */
async function honoListener(
  handlers: ServerHandlers,
  infos: WeakMap<object, ConnInfo>,
): Promise<http.RequestListener> {
  const { getRequestListener } = await import("@hono/node-server");
  return getRequestListener((req, env) =>
    handlers.fetch(req, { info: infos.get(env.incoming.socket)! })
  );
}

/** A plain request's answer to another protocol's upgrade: not switching. */
async function refusedWith(response: Response | Promise<Response>): Promise<UpgradeDecision> {
  return { kind: "refuse", response: await response };
}

/** A connection's `data` listener while its first bytes are read. */
type Sniffer = (chunk: Uint8Array) => void;

/**
 * Reads until the first bytes say what the connection speaks, pauses and
 * calls `decide`, which owns the socket and the bytes from then on. A client
 * that sends nothing in time is dropped. With `proxied`, a PROXY protocol
 * header comes first: it is read whole (within its size limit) and handed
 * to `proxied`, and the bytes after it are sniffed. The new owner removes
 * the `sniffer` listener once it has its own `data` listener: removing ours
 * while it is the only one would delete the event's slot and put the
 * socket's listener table in dictionary mode (0.4 KiB for the session's life).
 */
function sniff(
  sock: net.Socket,
  deadline: HandshakeDeadline,
  decide: (sock: net.Socket, first: Uint8Array, sniffer: Sniffer) => void,
  proxied?: (sock: net.Socket, header: ProxyHeader) => void,
): void {
  let first: Uint8Array = new Uint8Array(0);
  let decided = false;
  let header = proxied !== undefined;
  const onData = (chunk: Uint8Array) => {
    if (decided) return;
    first = first.length ? Buffer.concat([first, chunk]) : chunk;
    if (header) {
      const read = readProxyHeader(first);
      if (read.kind === "more") return;
      header = false;
      proxied!(sock, read);
      if (read.kind !== "ok") return void (decided = true);
      first = first.subarray(read.length);
    }
    if (classifyFirstBytes(first) === "more") return;
    decided = true;
    deadline.firstBytes();
    sock.pause();
    const bytes = first;
    first = EMPTY;
    decide(sock, bytes, onData);
  };
  sock.on("data", onData);
  sock.resume();
}

const EMPTY = new Uint8Array(0);

/**
 * The accepted socket under a TLS one (`_parent` on every runtime's
 * `TLSSocket`), or the socket itself.
 */
function rawSocket(sock: Duplex): net.Socket {
  return ((sock as { _parent?: net.Socket })._parent ?? sock) as net.Socket;
}

/** The address the client connected to; on a unix socket, the socket's path. */
function localOf(sock: net.Socket, at?: ListenAt): NetAddr {
  if (at && "path" in at) return { hostname: at.path, port: 0 };
  return { hostname: sock.localAddress ?? "", port: sock.localPort ?? 0 };
}

/** The client's address; on a unix socket, the socket's path. */
function remoteOf(sock: net.Socket, at?: ListenAt): NetAddr {
  if (at && "path" in at) return { hostname: at.path, port: 0 };
  return { hostname: sock.remoteAddress ?? "", port: sock.remotePort ?? 0 };
}

// A shared listener: a closure here would keep its request alive as long as
// the socket (V8 shares one context among a function's closures).
function destroySelf(this: Duplex): void {
  this.destroy();
}

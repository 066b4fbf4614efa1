/**
 * The seams between the runtime-neutral core (`lib/`) and the runtime
 * adapters (`adapters/`). Types only.
 *
 * @module
 */

/** A host and port. */
export interface NetAddr {
  /** A host name or IP address (IPv6 without brackets). */
  readonly hostname: string;
  /** The port; 0 for a unix socket path in `hostname`. */
  readonly port: number;
}

/** Where a WebSocket session is forwarded to. */
export type Target =
  | {
    readonly kind: "tcp";
    readonly hostname: string;
    readonly port: number;
    /** Connect with TLS (`--ssl-target`). */
    readonly tls?: boolean;
    /**
     * The IP address to connect to: `hostname` resolved and checked
     * (`--allow-target`), so that the name cannot be rebound after the
     * check. `hostname` still names a TLS target (SNI, verification).
     */
    readonly address?: string;
  }
  | { readonly kind: "unix"; readonly path: string };

/** The part of a `ReadableStreamDefaultReader` that the bridge uses. */
export interface ChunkReader<T> {
  /** The next chunk, or `done` once the source has ended. */
  read(): Promise<ReadableStreamReadResult<T>>;
  /** Stops reading; later reads return `done`. */
  cancel(reason?: unknown): Promise<void>;
}

/** The part of a `WritableStreamDefaultWriter` that the bridge uses. */
export interface ChunkWriter<T> {
  /** Settles once there is room for another chunk; rejects if the sink failed. */
  readonly ready: Promise<void>;
  /** Queues a chunk; wait for `ready` before the next one. */
  write(chunk: T): Promise<void>;
  /** Flushes what is queued, then ends this direction (FIN). */
  close(): Promise<void>;
  /** Drops what is queued and the connection. */
  abort(reason?: unknown): Promise<void>;
}

/**
 * A connected byte stream to a target, as a custom `connect` returns it.
 * Closing `writable` sends FIN (half-close); `close()` ends both directions
 * at once.
 */
export interface TargetConn {
  /** Bytes from the target; pauses the socket while full. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the target; settles once the socket has room. */
  readonly writable: WritableStream<Uint8Array>;
  /** Ends both directions at once. */
  close(): void;
}

/**
 * A {@link TargetConn} as the built-in connectors make it. `reader` and
 * `writer` are an optional fast path: when present, the bridge uses them
 * instead of `readable` and `writable` (use one or the other).
 */
export interface Conn extends TargetConn {
  /** Reads `readable`'s bytes without a Web Stream. */
  readonly reader?: ChunkReader<Uint8Array>;
  /** Writes like `writable` without a Web Stream. */
  readonly writer?: ChunkWriter<Uint8Array>;
}

/** How a WebSocket closed: the close code and reason the peer saw or sent. */
export interface CloseInfo {
  /** The close code (1006 when the connection dropped without one). */
  readonly code: number;
  /** The close reason, possibly empty. */
  readonly reason: string;
}

/**
 * The server side of an accepted WebSocket, one chunk per message.
 *
 * `readable` pauses reading from the client while it is full; `writable`
 * settles once the bytes queued for the client are below a high-water mark.
 * `reader` and `writer` are an optional fast path, as on {@link Conn}.
 */
export interface WsConn {
  /** Binary messages as bytes, text messages as strings. */
  readonly readable: ReadableStream<Uint8Array | string>;
  /** Each chunk is sent as one binary message (text in base64 mode). */
  readonly writable: WritableStream<Uint8Array | string>;
  /** Reads `readable`'s messages without a Web Stream. */
  readonly reader?: ChunkReader<Uint8Array | string>;
  /** Writes like `writable` without a Web Stream. */
  readonly writer?: ChunkWriter<Uint8Array | string>;
  /** The negotiated subprotocol: `"binary"`, `"base64"` or `""`. */
  readonly protocol: string;
  /** Settles when the WebSocket is closed, whoever closed it. */
  readonly closed: Promise<CloseInfo>;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Drops the connection without a closing handshake. */
  abort(): void;
  /** Sends an empty ping frame. */
  ping(): void;
  /** Called for every pong frame the client sends. */
  onpong: (() => void) | null;
}

/** What is known about a client connection before the upgrade. */
export interface ConnInfo {
  /** Counts accepted connections from 1, as upstream's handler id. */
  readonly id: number;
  /**
   * The client's address (a socket path for unix listeners): the TCP peer's,
   * or the one a PROXY protocol header (`--proxy-protocol`) or a trusted
   * proxy's `Forwarded`/`X-Forwarded-For` (`--trusted-proxy`) reports. A
   * reported address without a port has port 0.
   */
  readonly remote: NetAddr;
  /** The TCP peer, when it is not {@link ConnInfo.remote} (a proxy in front). */
  readonly peer?: NetAddr;
  /**
   * The address the client connected to, when it is needed
   * (`--target-proxy-protocol`): the listening socket's, or the one a PROXY
   * protocol header names.
   */
  readonly local?: NetAddr;
  /** True when the client connected over TLS. */
  readonly tls: boolean;
  /** The common name of a verified client certificate. */
  readonly peerCn?: string;
}

/**
 * What the HTTP app decides on a WebSocket upgrade request: refuse it with a
 * response, sent instead of the 101, or accept it with a subprotocol and a
 * target.
 */
export type UpgradeDecision =
  | { readonly kind: "refuse"; readonly response: Response }
  | {
    readonly kind: "accept";
    readonly protocol: string;
    readonly target: Target;
    /**
     * The connection as the request named its client (`--trusted-proxy`),
     * for the session; the server's own when absent.
     */
    readonly info?: ConnInfo;
    /** The raw token the token resolver used, if any; log it by `tokenLabel()` only. */
    readonly token?: string;
    /**
     * Frees the session's admission slot: the session calls it when it
     * ends, the server when the connection goes before the session opens.
     */
    readonly release?: () => void;
  };

/** A request's headers read by name, in any case, as `Headers.get()` reads them. */
export interface HeaderReader {
  get(name: string): string | null;
}

/**
 * A WebSocket upgrade request as the server read it: what deciding it needs,
 * without the cost of a fetch `Request`, which is built only for a hook that
 * takes one.
 */
export interface UpgradeRequest {
  readonly method: string;
  /** The absolute request URL, as a `Request` built from it parses it. */
  readonly url: string;
  readonly headers: HeaderReader;
  /** The request as a fetch `Request`, built on the first call. */
  request(): Request;
}

/** What the server adapter passes to the HTTP app with each plain request. */
export interface RequestEnv {
  readonly info: ConnInfo;
}

/** The callbacks a server adapter drives. */
export interface ServerHandlers {
  /** Answers plain HTTP requests (the Hono app). */
  fetch(req: Request, env: RequestEnv): Response | Promise<Response>;
  /** Decides a WebSocket upgrade request; at once when nothing it asks waits. */
  upgrade(req: UpgradeRequest, info: ConnInfo): UpgradeDecision | Promise<UpgradeDecision>;
  /**
   * Takes over a WebSocket the app accepted; `token` and `release` are the
   * decision's (see {@link UpgradeDecision}), `release` to call once the
   * session has ended.
   */
  open(ws: WsConn, target: Target, info: ConnInfo, token?: string, release?: () => void): void;
}

/** A listening server. */
export interface Listener {
  /**
   * The bound address (the real port when 0 was asked for); on a unix
   * socket, `hostname` is its path and `port` is 0.
   */
  readonly addr: NetAddr;
  /** Open client connections, HTTP and WebSocket. */
  readonly connections: number;
  /** Stops accepting and drops connections that have not upgraded. */
  close(): Promise<void>;
  /**
   * With TLS: reads and checks the certificate files now (throws when they
   * cannot be used) and returns what serves them to new connections.
   */
  readonly prepareTlsReload?: () => () => void;
}

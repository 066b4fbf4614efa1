/**
 * `websockify()`: the proxy put together from its parts (the server, the
 * app, the sessions, a target connector, the token and auth plugins, the
 * outputs). `mod.ts` re-exports it; the CLI (`adapters/cli/`) runs it.
 *
 * @module
 */
import { defaultConnect } from "./connect/connect.ts";
import { type ListenAt, listenNode } from "./server/listen.ts";
import { fileRecorder } from "./output/record_file.ts";
import type { TlsOptions } from "./server/tls.ts";
import { absolutePaths, nodeFs, resolveWebRoot } from "./server/web_fs.ts";
import { type Authenticate, createApp, type ResolveTarget } from "../lib/http/app.ts";
import { createAuthenticate } from "../lib/plugins/auth.ts";
import type { AuthPlugin, TokenPlugin } from "../lib/plugins/plugins.ts";
import { createTokenResolver } from "../lib/plugins/token.ts";
import { type Logger, SILENT_LOGGER } from "../lib/log.ts";
import { type Lifecycle, watchLifecycle } from "../lib/process/lifecycle.ts";
import { createSessions } from "../lib/bridge/sessions.ts";
import { parseTarget } from "../lib/target.ts";
import { MAX_TIMER_MS } from "../lib/limits.ts";
import type { NetAddr, Target, TargetConn } from "../lib/types.ts";

/** Options for {@link websockify}. */
export interface WebsockifyOptions {
  /**
   * Where to listen: a TCP address (default 127.0.0.1 on a free port), a unix
   * socket `{ path, mode }` (mode default 0o600), or an inherited listening
   * socket `{ fd }` (`--inetd` passes 0).
   */
  listen?: { hostname?: string; port?: number; reusePort?: boolean } | {
    path: string;
    mode?: number;
  } | { fd: number };
  /** Where to forward: `"host:port"` or a {@link Target}; omit with `tokenPlugin`. */
  target?: Target | string;
  /** Chooses the target per connection from its token (`?token=` or Host). */
  tokenPlugin?: TokenPlugin;
  /** Take the token from the Host header (`--host-token`). */
  hostToken?: boolean;
  /** Checks upgrades (and `web` requests with `webAuth`) before the 101. */
  authPlugin?: AuthPlugin;
  /** Resolve the listen host name to IPv6 first; `""` then means `::`. */
  preferIpv6?: boolean;
  /** Seconds between pings; a client that misses two pongs is dropped. */
  heartbeat?: number;
  /**
   * Seconds a connection may take to complete its WebSocket handshake (TLS
   * included) or to send a whole HTTP request head, and to send the next one
   * after an answer; it is dropped after that. Default 10; 0 is no limit.
   */
  handshakeTimeout?: number;
  /** Where log lines go; silent by default. */
  logger?: Logger;
  /** Replaces how targets are reached (default: `Deno.connect` on Deno, else `node:net`). */
  connect?: (target: Target) => Promise<TargetConn>;
  /** Serve TLS (wss://, https://) on the same port as plain connections. */
  tls?: TlsOptions;
  /** Refuse clients that do not start with TLS. */
  sslOnly?: boolean;
  /** Extra CA certificates (PEM text) trusted for TLS targets. */
  targetCa?: string | Uint8Array;
  /** Serve static files from this directory on the same port (`--web`). */
  web?: string;
  /** With `web`: answer 404 for directories without an index file. */
  fileOnly?: boolean;
  /**
   * With `web`: more files never served (a directory: nothing below it), by
   * real path and inode, so links do not reach them. Dotfiles and the `tls`
   * files are never served anyway.
   */
  webExclude?: readonly string[];
  /** A lower-level hook than `authPlugin`: a returned response refuses. */
  authenticate?: Authenticate;
  /** Apply the auth plugin (or `authenticate`) to `web` requests too. */
  webAuth?: boolean;
  /** Record each session to `record.N` in noVNC's playback format. */
  record?: string;
  /** Stop after the first WebSocket session ends. */
  runOnce?: boolean;
  /** Stop accepting this many seconds after start; stop when sessions end. */
  timeout?: number;
  /** Stop after this many seconds without any connection. */
  idleTimeout?: number;
}

/** A running proxy. */
export interface Websockify {
  /** The bound address; for a unix socket, `hostname` is its path. */
  readonly addr: NetAddr;
  /** The number of live WebSocket sessions. */
  readonly sessions: number;
  /** Open connections, HTTP and WebSocket. */
  readonly connections: number;
  /** Settles when the server has stopped, by `close()` or by itself. */
  readonly closed: Promise<void>;
  /** True from the start of {@link Websockify.drain}: not ready for new clients. */
  readonly draining: boolean;
  /** Stops listening, closes sessions with 1001 and waits for them. */
  close(): Promise<void>;
  /**
   * Drains for a rolling deploy: stops listening at once (new clients are
   * refused, `draining` turns true), lets live sessions run for up to
   * `timeoutSeconds`, then closes the rest with 1001. Resolves once the
   * server is closed, as soon as the last session ends. With 0 it closes
   * at once; `close()` during a drain ends it at once.
   *
   * @example
   * ```ts
   * import { websockify } from "./websockify.ts";
   *
   * const proxy = await websockify({ target: "127.0.0.1:5900" });
   * const drained = proxy.drain(30); // e.g. on SIGTERM
   * console.log(proxy.draining); // true: report not-ready
   * await drained; // no session was open: resolves at once
   * ```
   */
  drain(timeoutSeconds: number): Promise<void>;
}

/**
 * Starts a proxy.
 *
 * @param options Where to listen and where to forward.
 * @returns The running proxy, once it is listening.
 */
export async function websockify(options: WebsockifyOptions): Promise<Websockify> {
  const log = options.logger ?? SILENT_LOGGER;
  const { resolveTarget, target } = targetResolver(options, log);
  const sessions = createSessions({
    connect: options.connect ?? defaultConnect({ ca: options.targetCa }),
    log,
    heartbeatMs: (options.heartbeat ?? 0) * 1000,
    record: options.record === undefined ? undefined : fileRecorder(options.record, log),
    // Sessions run once the server listens, and `lifecycle` is set by then.
    onSessionEnd: () => {
      lifecycle.sessionEnded();
      if (draining && sessions.size === 0) void close();
    },
  });
  const web = options.web === undefined ? undefined : {
    root: await resolveWebRoot(options.web),
    fileOnly: options.fileOnly,
    exclude: absolutePaths([
      options.tls?.cert,
      options.tls?.key,
      options.tls?.ca,
      ...options.webExclude ?? [],
    ]),
    fs: nodeFs,
  };
  const app = createApp({
    resolveTarget,
    target,
    log,
    web,
    authenticate: options.authPlugin
      ? createAuthenticate(options.authPlugin, log)
      : options.authenticate,
    webAuth: options.webAuth,
  });
  const listener = await listenNode({
    at: listenAt(options),
    tls: options.tls,
    sslOnly: options.sslOnly,
    handshakeTimeoutMs: options.handshakeTimeout === undefined
      ? undefined
      : options.handshakeTimeout * 1000,
    log,
  }, { fetch: app.fetch, upgrade: app.upgrade, open: sessions.open });
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));
  let closing: Promise<void> | undefined;
  let draining = false;
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  // Sessions still live when a drain was cut short (window over, or close()).
  let cut = 0;
  const close = () =>
    closing ??= (async () => {
      if (draining) cut = sessions.size;
      clearTimeout(drainTimer);
      lifecycle.dispose();
      await Promise.all([listener.close(), sessions.shutdown()]);
      await options.tokenPlugin?.close?.();
      markClosed();
    })();
  let drained: Promise<void> | undefined;
  const drain = (timeoutSeconds: number) => {
    if (closing && !drained) return close();
    return drained ??= (async () => {
      draining = true;
      const started = Date.now();
      const live = sessions.size;
      log.info(`Draining ${live} session(s) for up to ${timeoutSeconds} s`);
      void listener.close();
      if (live === 0 || !(timeoutSeconds > 0)) void close();
      else {
        drainTimer = setTimeout(close, Math.min(timeoutSeconds * 1000, MAX_TIMER_MS));
      }
      await closed;
      const seconds = ((Date.now() - started) / 1000).toFixed(3);
      log.info(`Drain over after ${seconds} s: ${cut} of ${live} session(s) cut with 1001`);
    })();
  };
  const lifecycle: Lifecycle = watchLifecycle(
    { runOnce: options.runOnce, timeout: options.timeout, idleTimeout: options.idleTimeout, log },
    {
      connections: () => listener.connections,
      stopListening: () => void listener.close(),
      shutdown: () => void close(),
    },
  );
  return {
    addr: listener.addr,
    get sessions() {
      return sessions.size;
    },
    get connections() {
      return listener.connections;
    },
    get draining() {
      return draining;
    },
    closed,
    close,
    drain,
  };
}

function listenAt(options: WebsockifyOptions): ListenAt {
  const listen = options.listen ?? {};
  if ("fd" in listen || "path" in listen) return listen;
  return {
    hostname: listen.hostname ?? "127.0.0.1",
    port: listen.port ?? 0,
    preferIpv6: options.preferIpv6,
    reusePort: listen.reusePort,
  };
}

/** How upgrades find their target; `target` when it is fixed. */
function targetResolver(
  options: WebsockifyOptions,
  log: Logger,
): { resolveTarget: ResolveTarget; target?: Target } {
  const { tokenPlugin, hostToken } = options;
  if (tokenPlugin) {
    if (options.target !== undefined) throw new TypeError("Give either target or tokenPlugin");
    return { resolveTarget: createTokenResolver({ plugin: tokenPlugin, hostToken, log }) };
  }
  if (options.target === undefined) throw new TypeError("A target or a tokenPlugin is needed");
  const target = typeof options.target === "string" ? parseTarget(options.target) : options.target;
  return { resolveTarget: () => target, target };
}

/**
 * `websockify()`: the proxy put together from its parts (the server, the
 * app, the sessions, a target connector, the token and auth plugins, the
 * outputs). `mod.ts` re-exports it; the CLI (`adapters/cli/`) runs it.
 *
 * @module
 */
import { defaultConnect } from "./connect/connect.ts";
import { withProxyHeader } from "./connect/proxy_header.ts";
import { type ListenAt, listenNode } from "./server/listen.ts";
import { fileRecorder } from "./output/record_file.ts";
import type { TlsOptions } from "./server/tls.ts";
import { absolutePaths, nodeFs, resolveWebRoot } from "./server/web_fs.ts";
import { type Authenticate, createApp, type ResolveTarget } from "../lib/http/app.ts";
import { createAdmission } from "../lib/http/admission.ts";
import { createAuthenticate } from "../lib/plugins/auth.ts";
import type { AuthPlugin, TokenPlugin } from "../lib/plugins/plugins.ts";
import { createTokenResolver, parseTokenFrom, type TokenSource } from "../lib/plugins/token.ts";
import { type Logger, SILENT_LOGGER } from "../lib/log.ts";
import { type Lifecycle, watchLifecycle } from "../lib/process/lifecycle.ts";
import { createSessions } from "../lib/bridge/sessions.ts";
import { reloadAll, type ReloadStep } from "../lib/process/reload.ts";
import { guardTargets, parseTargetRules, type TargetRule } from "../lib/plugins/target_rules.ts";
import { lookupAddresses } from "./connect/resolve.ts";
import { MAX_TIMER_MS, READY_CHECK_MS } from "../lib/limits.ts";
import {
  checkReadiness,
  metricsListenError,
  observeConnect,
  observeTokens,
  type Readiness,
  samePortError,
} from "../lib/metrics.ts";
import type { Closable, MetricsSource } from "./metrics/server.ts";
import { parseTarget } from "../lib/target.ts";
import { parseCidrList } from "../lib/net/cidr.ts";
import type { Conn, ConnInfo, NetAddr, Target, TargetConn } from "../lib/types.ts";

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
  /** Chooses the target per connection from its token (`?token=` by default). */
  tokenPlugin?: TokenPlugin;
  /**
   * Where the token comes from, first found wins (`--token-from`): a list
   * such as `"path,cookie:vnc"` (`query`, `path`, `cookie:NAME`,
   * `header:NAME`, `host`) or its parsed form. Default `"query"`.
   */
  tokenFrom?: string | readonly TokenSource[];
  /** Take the token from the Host header (`--host-token`): `tokenFrom: "host"`. */
  hostToken?: boolean;
  /**
   * With `tokenPlugin`: the targets it may return (`--allow-target`), as
   * text such as `"10.0.0.0/8:5900-5999,*.vnc.example,unix:/run/vnc/"` or
   * parsed; others get 403. A host name not allowed by a name rule is
   * resolved, and the session connects to the first address an IP rule
   * allows. Default: any target.
   */
  allowTarget?: string | readonly TargetRule[];
  /**
   * Peers (`"10.0.0.0/8,::1"` or a list of IP addresses and CIDR blocks)
   * whose `Forwarded` or `X-Forwarded-For` header names the client
   * (`--trusted-proxy`); from other peers these headers are ignored. An
   * entry that is not one throws a `TypeError`.
   */
  trustedProxy?: string | readonly string[];
  /**
   * Every connection starts with a PROXY protocol header (v1 or v2), whose
   * source address is the client's (`--proxy-protocol`); a connection
   * without a valid one is closed.
   */
  proxyProtocol?: boolean;
  /**
   * Send each target a PROXY protocol v2 header naming the client before any
   * payload (`--target-proxy-protocol`).
   */
  targetProxyProtocol?: boolean;
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
  /**
   * At most this many live sessions; more upgrades get 503 with
   * `Retry-After` (`--max-connections`). Limits are per process.
   */
  maxConnections?: number;
  /** At most this many live sessions per client address (IPv6: per /64); more get 429. */
  maxConnectionsPerIp?: number;
  /** At most this many live sessions per token; more get 429. */
  maxConnectionsPerToken?: number;
  /**
   * At most this many new sessions per client address (IPv6: per /64) in any
   * minute; more get 429 with `Retry-After`, the seconds until one frees.
   */
  rateLimit?: number;
  /** Close sessions this many seconds old with 1008. */
  maxSessionDuration?: number;
  /** Close sessions with no payload either way for this many seconds with 1000. */
  sessionIdleTimeout?: number;
  /**
   * Only clients in these CIDR blocks (`"10.0.0.0/8"`, `"::1"`) may connect;
   * others get 403. A bad block throws a `TypeError`.
   */
  allowClient?: readonly string[];
  /**
   * Serve `/metrics` (Prometheus), `/healthz` and `/readyz` on a second
   * listener (`--metrics`); see {@link MetricsOptions}.
   */
  metrics?: MetricsOptions;
}

/**
 * Where `websockify({ metrics })` serves `/metrics`, `/healthz` and `/readyz`.
 *
 * @example
 * ```ts
 * import { websockify } from "./websockify.ts";
 *
 * const server = await websockify({ target: "127.0.0.1:5900", metrics: { port: 0 } });
 * const res = await fetch(`http://127.0.0.1:${server.metricsAddr!.port}/metrics`);
 * console.log((await res.text()).includes("websockify_sessions_total")); // true
 * await server.close();
 * ```
 */
export interface MetricsOptions {
  /** The address to listen on; 127.0.0.1 by default. */
  hostname?: string;
  /** The port; 0 (the default) picks a free one (see `Websockify.metricsAddr`). */
  port?: number;
  /**
   * With worker processes (`--workers`): the directory where each of them
   * serves its metrics on a unix socket; a scrape sums them all in.
   */
  workersDir?: string;
  /**
   * In a worker: serve this process's metrics on this unix socket, for the
   * process that owns the metrics port, instead of listening on a port.
   */
  socket?: string;
}

/** What {@link Websockify.reload} reads again. */
export type ReloadPart = "tokens" | "auth" | "certificate";

/** A running proxy. */
export interface Websockify {
  /** The bound address; for a unix socket, `hostname` is its path. */
  readonly addr: NetAddr;
  /** The number of live WebSocket sessions. */
  readonly sessions: number;
  /** Open connections, HTTP and WebSocket. */
  readonly connections: number;
  /** Where `/metrics` is served, with the `metrics` option (not in a worker). */
  readonly metricsAddr?: NetAddr;
  /** True from the start of {@link Websockify.drain}: not ready, no new sessions. */
  readonly draining: boolean;
  /** Settles when the server has stopped, by `close()` or by itself. */
  readonly closed: Promise<void>;
  /** Stops listening, closes sessions with 1001 and waits for them. */
  close(): Promise<void>;
  /**
   * Reads again what can change without a restart (the CLI calls it on
   * SIGHUP): the token and auth plugins that have a `reload`, and the TLS
   * certificate, key and client CA. All or nothing: it resolves with what
   * was reloaded, or rejects with a `ConfigError` naming each part that
   * failed and keeps every old setting. New connections get the new
   * settings; open sessions are not touched. Reloads run one at a time.
   *
   * @example
   * ```ts
   * import { websockify } from "./websockify.ts";
   *
   * const proxy = await websockify({ target: "127.0.0.1:5900" });
   * console.log(await proxy.reload()); // [] without plugins or TLS to reload
   * await proxy.close();
   * ```
   */
  reload(): Promise<ReloadPart[]>;
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
  // prom-client is loaded only with `metrics`: it costs start-up time and memory.
  const metrics = options.metrics &&
    (await import("./metrics/registry.ts")).createProxyMetrics(options.tokenPlugin !== undefined);
  const observer = metrics?.observer;
  const observedTokens = observer && options.tokenPlugin
    ? observeTokens(options.tokenPlugin, observer)
    : options.tokenPlugin;
  const { resolveTarget, target } = targetResolver(
    { ...options, tokenPlugin: observedTokens },
    log,
  );
  const trustedProxies = options.trustedProxy === undefined
    ? undefined
    : parseCidrList(options.trustedProxy);
  const connect = options.connect ?? defaultConnect({ ca: options.targetCa });
  const withHeader: (target: Target, info: ConnInfo) => Promise<Conn> = options.targetProxyProtocol
    ? withProxyHeader(connect)
    : connect;
  const sessions = createSessions({
    connect: observer ? observeConnect(withHeader, observer) : withHeader,
    observer,
    log,
    heartbeatMs: (options.heartbeat ?? 0) * 1000,
    record: options.record === undefined ? undefined : fileRecorder(options.record, log),
    // Sessions run once the server listens, and `lifecycle` is set by then.
    onSessionEnd: () => {
      lifecycle.sessionEnded();
      if (draining && sessions.size === 0) void close();
    },
    maxDurationMs: (options.maxSessionDuration ?? 0) * 1000,
    idleTimeoutMs: (options.sessionIdleTimeout ?? 0) * 1000,
  });
  const admission = createAdmission({
    maxConnections: options.maxConnections,
    maxPerIp: options.maxConnectionsPerIp,
    maxPerToken: options.maxConnectionsPerToken,
    rateLimit: options.rateLimit,
    allowClient: options.allowClient && parseCidrList(options.allowClient),
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
    trustedProxies,
    admission,
  });
  const listener = await listenNode({
    at: listenAt(options),
    tls: options.tls,
    sslOnly: options.sslOnly,
    handshakeTimeoutMs: options.handshakeTimeout === undefined
      ? undefined
      : options.handshakeTimeout * 1000,
    proxyProtocol: options.proxyProtocol,
    local: options.targetProxyProtocol,
    log,
    onRefuse: observer?.refused,
  }, { fetch: app.fetch, upgrade: app.upgrade, open: sessions.open });
  metrics?.watch(sessions);
  let closing: Promise<void> | undefined;
  let stoppedListening = false;
  let draining = false;
  let metricsServer: Closable | undefined;
  let metricsAddr: NetAddr | undefined;
  if (metrics) {
    const ready = (): Promise<Readiness> =>
      checkReadiness({
        listening: !stoppedListening && closing === undefined,
        draining,
        tokens: options.tokenPlugin?.ready && (() => options.tokenPlugin!.ready!()),
      }, READY_CHECK_MS);
    const source: MetricsSource = {
      json: () => metrics.registry.getMetricsAsJSON(),
      ready,
      workersDir: options.metrics!.workersDir,
    };
    try {
      metricsServer = await startMetrics(options.metrics!, listener.addr, source);
    } catch (error) {
      await Promise.all([listener.close(), options.tokenPlugin?.close?.()]);
      throw error;
    }
    if ("addr" in metricsServer) metricsAddr = metricsServer.addr as NetAddr;
  }
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  // Sessions still live when a drain was cut short (window over, or close()).
  let cut = 0;
  const close = () =>
    closing ??= (async () => {
      if (draining) cut = sessions.size;
      clearTimeout(drainTimer);
      lifecycle.dispose();
      await Promise.all([listener.close(), sessions.shutdown(), metricsServer?.close()]);
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
      stopListening: () => {
        stoppedListening = true; // --timeout: no new sessions, so not ready
        void listener.close();
      },
      shutdown: () => void close(),
    },
  );
  const steps: ReloadStep<ReloadPart>[] = [];
  const { tokenPlugin, authPlugin } = options;
  if (tokenPlugin?.reload) steps.push({ name: "tokens", prepare: () => tokenPlugin.reload!() });
  if (authPlugin?.reload) steps.push({ name: "auth", prepare: () => authPlugin.reload!() });
  const { prepareTlsReload } = listener;
  if (prepareTlsReload) {
    steps.push({ name: "certificate", prepare: () => Promise.resolve(prepareTlsReload()) });
  }
  let reloading: Promise<unknown> = Promise.resolve();
  const reload = () => {
    const next = reloading.then(() => reloadAll(steps));
    reloading = next.catch(() => {});
    return next;
  };
  return {
    addr: listener.addr,
    get sessions() {
      return sessions.size;
    },
    get connections() {
      return listener.connections;
    },
    metricsAddr,
    get draining() {
      return draining;
    },
    closed,
    close,
    reload,
    drain,
  };
}

/** The metrics listener, or in a worker its socket for the process owning the port. */
async function startMetrics(
  options: MetricsOptions,
  proxy: NetAddr,
  source: MetricsSource,
): Promise<Closable & { addr?: NetAddr }> {
  const { serveMetrics, serveWorkerReport } = await import("./metrics/server.ts");
  if (options.socket !== undefined) return serveWorkerReport(options.socket, source);
  const port = options.port ?? 0;
  if (port !== 0 && port === proxy.port) throw samePortError(port);
  const at = { hostname: options.hostname ?? "127.0.0.1", port };
  return serveMetrics(at, source).catch((error) => {
    throw metricsListenError(at, error);
  });
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
    if (hostToken && options.tokenFrom !== undefined) {
      throw new TypeError("Give either tokenFrom or hostToken");
    }
    const tokenFrom = typeof options.tokenFrom === "string"
      ? parseTokenFrom(options.tokenFrom)
      : options.tokenFrom;
    const resolveTarget = createTokenResolver({ plugin: tokenPlugin, tokenFrom, hostToken, log });
    const { allowTarget } = options;
    if (allowTarget === undefined) return { resolveTarget };
    const rules = typeof allowTarget === "string" ? parseTargetRules(allowTarget) : allowTarget;
    return { resolveTarget: guardTargets(resolveTarget, { rules, lookup: lookupAddresses, log }) };
  }
  if (options.target === undefined) throw new TypeError("A target or a tokenPlugin is needed");
  // A fixed target is the operator's own choice: the rules guard token stores.
  if (options.allowTarget !== undefined) throw new TypeError("allowTarget needs a tokenPlugin");
  const target = typeof options.target === "string" ? parseTarget(options.target) : options.target;
  return { resolveTarget: () => target, target };
}

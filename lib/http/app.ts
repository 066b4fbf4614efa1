/**
 * The HTTP side as a Hono app: WebSocket upgrades on any path (handshake
 * checks, subprotocol, target) and answers for plain requests.
 *
 * @module
 */
import { Hono } from "hono";
import { checkHandshake } from "../protocol/handshake.ts";
import { errorText } from "../errors.ts";
import { logEvent, type Logger } from "../log.ts";
import { type Admission, CLIENT_NOT_ALLOWED, type Refusal, type Ticket } from "./admission.ts";
import { refuse, refuseFields } from "./refuse.ts";
import { clientLabel } from "../target.ts";
import type { Cidr } from "../net/cidr.ts";
import { clientThroughProxies } from "../net/forwarded.ts";
import type {
  ConnInfo,
  RequestEnv,
  ServerHandlers,
  Target,
  UpgradeDecision,
  UpgradeRequest,
} from "../types.ts";
import { upgradeRequestOf } from "../protocol/upgrade_head.ts";
import { serveWeb, type WebOptions } from "./web.ts";

/** A target with the token that chose it (with a token plugin). */
export interface ResolvedTarget {
  readonly target: Target;
  /** The raw token; logs name it by `tokenLabel()` only. */
  readonly token?: string;
}

/** Picks the target for an upgrade, or refuses it with a response. */
export type ResolveTarget = (
  req: UpgradeRequest,
  info: ConnInfo,
) =>
  | Target
  | ResolvedTarget
  | Response
  | Promise<Target | ResolvedTarget | Response>;

/**
 * Checks a request before it is served; a response refuses it. Upgrades are
 * checked after the handshake and before the token lookup, so a client
 * without credentials learns nothing about tokens and costs the token store
 * nothing; `target` is the fixed target, undefined with a token plugin and
 * for `--web` requests (checked only with `webAuth`).
 */
export type Authenticate = (
  req: Request,
  info: ConnInfo,
  target: Target | undefined,
) => Response | undefined | Promise<Response | undefined>;

/** Options for {@link createApp}. */
export interface AppOptions {
  resolveTarget: ResolveTarget;
  /** The target when it is fixed (no token plugin), for `authenticate`. */
  target?: Target;
  log: Logger;
  /** Serve files for plain GET/HEAD requests (`--web`). */
  web?: WebOptions;
  authenticate?: Authenticate;
  /** Apply `authenticate` to `--web` requests too (`--web-auth`). */
  webAuth?: boolean;
  /**
   * Peers whose `Forwarded`/`X-Forwarded-For` name the client
   * (`--trusted-proxy`), read anew for each request.
   */
  trustedProxies?: readonly Cidr[];
  /** Client addresses, connection caps and rate limit (`lib/http/admission.ts`). */
  admission?: Admission;
}

/** Methods upstream answers with 405 rather than 501. */
const KNOWN_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/**
 * The app: Hono answers plain requests (`--web` files, 405, 501), and
 * `upgrade` decides WebSocket upgrades as data, which the server acts on.
 */
export type App = Hono<{ Bindings: RequestEnv }> & {
  /** Decides a WebSocket upgrade request (or a fetch `Request` of one); never rejects. */
  readonly upgrade: (
    req: UpgradeRequest | Request,
    info: ConnInfo,
  ) => ReturnType<ServerHandlers["upgrade"]>;
};

/**
 * Creates the app that a server adapter calls for every request.
 *
 * @example
 * ```ts
 * import { SILENT_LOGGER } from "../log.ts";
 * import { parseTarget } from "../target.ts";
 * import { createApp } from "./app.ts";
 *
 * const target = parseTarget("localhost:5900");
 * const app = createApp({ resolveTarget: () => target, log: SILENT_LOGGER });
 * const request = new Request("http://localhost/", {
 *   headers: {
 *     upgrade: "websocket",
 *     connection: "Upgrade",
 *     "sec-websocket-version": "13",
 *     "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
 *     "sec-websocket-protocol": "binary",
 *   },
 * });
 * const info = { id: 1, remote: { hostname: "127.0.0.1", port: 50000 }, tls: false };
 * const decision = await app.upgrade(request, info);
 * console.log(decision.kind); // "accept", with protocol "binary" and the target
 * ```
 */
export function createApp(options: AppOptions): App {
  const { log, resolveTarget, admission } = options;
  const trusted = options.trustedProxies?.length ? options.trustedProxies : undefined;
  /** The connection as this request names its client: before logs, auth and tokens. */
  const clientOf = (info: ConnInfo, req: Request): ConnInfo =>
    trusted ? clientThroughProxies(info, req.headers, trusted) : info;
  const refused = (
    info: ConnInfo,
    status: number,
    reason: string,
    headers?: Record<string, string>,
  ): Response => {
    logEvent(log, "info", `${clientLabel(info)}: code ${status}, message ${reason}`, {
      ...refuseFields(info, status),
      reason,
    });
    return refuse(status, reason, headers);
  };
  const refusedBy = (info: ConnInfo, { status, reason, headers }: Refusal) =>
    refused(info, status, reason, headers);
  const app = new Hono<{ Bindings: RequestEnv }>();
  app.all("*", async (c) => {
    const info = clientOf(c.env.info, c.req.raw);
    const method = c.req.method;
    if (admission && !admission.allowed(info)) return refusedBy(info, CLIENT_NOT_ALLOWED);
    if (!KNOWN_METHODS.includes(method)) {
      return refused(info, 501, `Unsupported method ('${method}')`);
    }
    if (options.web && (method === "GET" || method === "HEAD")) {
      const denied = options.webAuth && await options.authenticate?.(c.req.raw, info, undefined);
      if (denied) return denied;
      const res = await serveWeb(c.req.raw, options.web);
      log.debug(`${clientLabel(info)}: ${method} ${c.req.path} ${res.status}`);
      return res;
    }
    return refused(info, 405, "Method Not Allowed");
  });

  /** The accepting decision for what `resolveTarget` returned, or a refusal. */
  const decide = (
    resolved: Target | ResolvedTarget | Response,
    protocol: string,
    info: ConnInfo,
    conn: ConnInfo,
    ticket: Ticket | undefined,
  ): UpgradeDecision => {
    // A target has `kind`, a resolved one `target`: the common case never
    // reads the global `Response` (on Node, its first use loads undici).
    if (!("kind" in resolved || "target" in resolved) && resolved instanceof Response) {
      ticket?.cancel();
      return refusal(resolved);
    }
    const accepted: ResolvedTarget = "target" in resolved ? resolved : { target: resolved };
    const full = ticket?.token(accepted.token);
    if (full) return refusal(refusedBy(info, full));
    return {
      kind: "accept",
      protocol,
      ...accepted,
      ...ticket && { release: () => ticket.release() },
      ...info !== conn && { info },
    };
  };
  const failed = (error: unknown, info: ConnInfo, ticket: Ticket | undefined): UpgradeDecision => {
    ticket?.cancel();
    // A hook that throws gets what Hono answers for a throwing handler.
    log.error(`${clientLabel(info)}: ${errorText(error)}`);
    return refusal(new Response("Internal Server Error", { status: 500, headers: TEXT }));
  };
  /** The rest of a decision that waits: for `authenticate`, or for the target. */
  const later = async (
    req: UpgradeRequest,
    resolving: Promise<Target | ResolvedTarget | Response> | undefined,
    protocol: string,
    info: ConnInfo,
    conn: ConnInfo,
    ticket: Ticket | undefined,
  ): Promise<UpgradeDecision> => {
    try {
      if (!resolving) {
        const denied = await options.authenticate?.(req.request(), info, options.target);
        if (denied) {
          ticket?.cancel();
          return refusal(denied);
        }
      }
      return decide(await (resolving ?? resolveTarget(req, info)), protocol, info, conn, ticket);
    } catch (error) {
      return failed(error, info, ticket);
    }
  };

  // Not async: with no hook that waits (a fixed target, no auth) the
  // decision is made at once, without a promise.
  const upgrade = (
    request: UpgradeRequest | Request,
    conn: ConnInfo,
  ): UpgradeDecision | Promise<UpgradeDecision> => {
    const req = "request" in request ? request : upgradeRequestOf(request);
    const headers = req.headers;
    const info = trusted ? clientThroughProxies(conn, headers, trusted) : conn;
    // First: a client that may not come in learns nothing else.
    if (admission && !admission.allowed(info)) {
      return refusal(refusedBy(info, CLIENT_NOT_ALLOWED));
    }
    const method = req.method;
    if (method !== "GET") {
      if (!KNOWN_METHODS.includes(method)) {
        return refusal(refused(info, 501, `Unsupported method ('${method}')`));
      }
      const res = refused(info, 405, "Method Not Allowed");
      // Without a body for HEAD, as Hono answers it.
      return refusal(method === "HEAD" ? new Response(null, res) : res);
    }
    if (log.verbose) {
      log.debug(
        `${clientLabel(info)}: upgrade ${app.getPath(req.request())}, protocols '${
          headers.get("sec-websocket-protocol") ?? ""
        }', origin '${headers.get("origin") ?? ""}'`,
      );
    }
    const handshake = checkHandshake(headers);
    if (!handshake.ok) return refusal(refused(info, handshake.status, handshake.reason));
    // The caps before auth and the token lookup, which a full server spares.
    const ticket = admission?.enter(info);
    if (ticket && !("release" in ticket)) return refusal(refusedBy(info, ticket));
    if (options.authenticate) return later(req, undefined, handshake.protocol, info, conn, ticket);
    try {
      const resolved = resolveTarget(req, info);
      return isPromiseLike(resolved)
        ? later(req, Promise.resolve(resolved), handshake.protocol, info, conn, ticket)
        : decide(resolved, handshake.protocol, info, conn, ticket);
    } catch (error) {
      return failed(error, info, ticket);
    }
  };
  return Object.assign(app, { upgrade });
}

const TEXT = { "content-type": "text/plain; charset=UTF-8" };

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown }).then === "function";
}

function refusal(response: Response): UpgradeDecision {
  return { kind: "refuse", response };
}

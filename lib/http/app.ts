/**
 * The HTTP side as a Hono app: WebSocket upgrades on any path (handshake
 * checks, subprotocol, target) and answers for plain requests.
 *
 * @module
 */
import { Hono } from "hono";
import { checkHandshake } from "../protocol/handshake.ts";
import type { Logger } from "../log.ts";
import { refuse } from "./refuse.ts";
import { clientLabel } from "../target.ts";
import type { ConnInfo, RequestEnv, Target } from "../types.ts";
import { serveWeb, type WebOptions } from "./web.ts";

/** Picks the target for an upgrade, or refuses it with a response. */
export type ResolveTarget = (
  req: Request,
  info: ConnInfo,
) => Target | Response | Promise<Target | Response>;

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
}

/** Methods upstream answers with 405 rather than 501. */
const KNOWN_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

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
 * ```
 */
export function createApp(options: AppOptions): Hono<{ Bindings: RequestEnv }> {
  const { log, resolveTarget } = options;
  const app = new Hono<{ Bindings: RequestEnv }>();
  app.all("*", async (c) => {
    const { info, accept } = c.env;
    const client = clientLabel(info);
    const refuseLogged = (status: number, reason: string) => {
      log.info(`${client}: code ${status}, message ${reason}`);
      return refuse(status, reason);
    };
    const method = c.req.method;
    if (!KNOWN_METHODS.includes(method)) {
      return refuseLogged(501, `Unsupported method ('${method}')`);
    }
    const readOnly = method === "GET" || method === "HEAD";
    if (!accept && readOnly && options.web) {
      const denied = options.webAuth && await options.authenticate?.(c.req.raw, info, undefined);
      if (denied) return denied;
      const res = await serveWeb(c.req.raw, options.web);
      log.debug(`${client}: ${method} ${c.req.path} ${res.status}`);
      return res;
    }
    if (!accept || method !== "GET") return refuseLogged(405, "Method Not Allowed");
    const headers = c.req.raw.headers;
    log.debug(
      `${client}: upgrade ${c.req.path}, protocols '${
        headers.get("sec-websocket-protocol") ?? ""
      }', origin '${headers.get("origin") ?? ""}'`,
    );
    const handshake = checkHandshake(headers);
    if (!handshake.ok) return refuseLogged(handshake.status, handshake.reason);
    const denied = await options.authenticate?.(c.req.raw, info, options.target);
    if (denied) return denied;
    const target = await resolveTarget(c.req.raw, info);
    if (target instanceof Response) return target;
    accept(handshake.protocol, target);
    return new Response(null, { status: 204 });
  });
  return app;
}

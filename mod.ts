/**
 * websockify: a WebSocket-to-TCP bridge for Deno, Bun and Node.
 *
 * Data flow: `adapters/server/listen.ts` accepts connections with `node:net`
 * on every runtime and reads each one's first bytes (`lib/protocol/sniff.ts`).
 * A WebSocket upgrade that arrives whole in a plain connection's first bytes
 * is parsed strictly by `lib/protocol/upgrade_head.ts`; everything else goes
 * to a `node:http` server, TLS connections too once a `node:tls` server on
 * the same port has unwrapped them (`adapters/server/tls.ts`). Either way the
 * app in `lib/http/app.ts` decides: for an upgrade it returns a decision
 * (refuse with this response, or accept with this subprotocol and target)
 * after the handshake checks, the auth plugin and the token plugin; plain
 * requests (`web` files, refusals) are routed by Hono.
 * For an accepted upgrade `adapters/server/ws_conn.ts` writes the 101 and
 * speaks RFC 6455 with the frame parser of `lib/protocol/frames.ts`; then
 * `lib/bridge/sessions.ts` runs one `bridge()` (`lib/bridge/bridge.ts`) per
 * session, which reaches the target through a connector from
 * `adapters/connect/` and pumps bytes both ways with backpressure until
 * either side closes. `adapters/websockify.ts` puts these parts together.
 *
 * @example
 * ```ts
 * import { websockify } from "./mod.ts";
 *
 * const server = await websockify({
 *   listen: { hostname: "127.0.0.1", port: 0 },
 *   target: "localhost:5900",
 * });
 * console.log(`listening on port ${server.addr.port}`);
 * await server.close();
 * ```
 *
 * @module
 */
export type { Authenticate } from "./lib/http/app.ts";
export {
  createLogger,
  type Level,
  type LogFields,
  type LogFormat,
  type Logger,
  type LoggerOptions,
} from "./lib/log.ts";
export { parseTarget } from "./lib/target.ts";
export type { TlsOptions } from "./adapters/server/tls.ts";
export {
  AuthenticationError,
  type AuthenticationErrorOptions,
  ConfigError,
  TlsConfigError,
  UsageError,
} from "./lib/errors.ts";
export {
  type AuthPlugin,
  type AuthPluginFactory,
  type AuthRequest,
  type PluginContext,
  type Reload,
  type TokenPlugin,
  type TokenPluginFactory,
} from "./lib/plugins/plugins.ts";
export { loadAuthPlugin, loadTokenPlugin, TOKEN_PLUGINS } from "./adapters/stores/plugins.ts";
export type { TokenSource } from "./lib/plugins/token.ts";
export type { PortRange, TargetRule } from "./lib/plugins/target_rules.ts";
export type { Cidr } from "./lib/net/cidr.ts";
export { AUTH_PLUGINS } from "./lib/plugins/auth.ts";
export type { ConnInfo, NetAddr, Target, TargetConn } from "./lib/types.ts";

export {
  type MetricsOptions,
  type ReloadPart,
  type Websockify,
  websockify,
  type WebsockifyOptions,
} from "./adapters/websockify.ts";

/**
 * The plugin seams, as small as upstream's: a token plugin maps a token to a
 * target; an auth plugin accepts a request or throws
 * {@link AuthenticationError}. Custom plugins are modules exporting
 * `tokenPlugin` or `authPlugin` factories (see `adapters/stores/plugins.ts`).
 *
 * @example
 * ```ts
 * // my_tokens.ts, used as --token-plugin=./my_tokens.ts --token-source=...
 * import type { TokenPluginFactory } from "@websockify/websockify";
 * export const tokenPlugin: TokenPluginFactory = (source) => ({
 *   lookup: (token) => token === "vnc1" ? { kind: "tcp", hostname: "10.0.0.5", port: 5900 } : undefined,
 * });
 * ```
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { ConnInfo, Target } from "../types.ts";

/** Maps tokens to targets. */
export interface TokenPlugin {
  /**
   * The target for `token`, or undefined when the token is unknown. Throw
   * when the lookup itself fails (a store is down): the client gets 503; or
   * throw an {@link AuthenticationError} to refuse with its status.
   */
  lookup(token: string): Target | undefined | Promise<Target | undefined>;
  /** Releases what the plugin holds open (connections, watchers). */
  close?(): void | Promise<void>;
  /** Reads the source again on SIGHUP or `reload()`: see {@link Reload}. */
  reload?: Reload;
  /**
   * Resolves when the store answers (`/readyz`): a Redis ping, the API
   * reachable, the file readable; rejects with the reason otherwise. Its
   * time is bounded by the caller.
   */
  ready?(): Promise<void>;
}

/**
 * A plugin's part of a reload, in two steps so that a reload is all or
 * nothing: read and check the new state, and resolve with a function that
 * puts it in use (called only once every part of the reload has succeeded;
 * it must not fail), or reject to keep the old state. Sessions already
 * open are not affected.
 */
export type Reload = () => Promise<() => void>;

/** What a plugin factory gets besides its source. */
export interface PluginContext {
  /** The proxy's logger, for reasons a client is not told. */
  readonly log: Logger;
}

/** Creates a token plugin from `--token-source`. */
export type TokenPluginFactory = (
  source: string | undefined,
  context: PluginContext,
) => TokenPlugin | Promise<TokenPlugin>;

/** What an auth plugin sees of a request. */
export interface AuthRequest {
  /**
   * The request headers, without client-sent `SSL_*` headers; with a verified
   * client certificate, `SSL_CLIENT_S_DN_CN` holds its CN (as upstream).
   */
  readonly headers: Headers;
  /**
   * The target when it is fixed. Undefined with a token plugin: requests are
   * authenticated before their token is looked up, so that clients without
   * credentials cannot probe tokens or load the token store. Undefined for
   * `--web` requests (`--web-auth`) too.
   */
  readonly target?: Target;
  /** The client: address, TLS, verified certificate CN. */
  readonly client: ConnInfo;
}

/** Decides whether a request may proceed. */
export interface AuthPlugin {
  /** Returns to accept; throws {@link AuthenticationError} to refuse. */
  authenticate(request: AuthRequest): void | Promise<void>;
  /** Reads the source again on SIGHUP or `reload()`: see {@link Reload}. */
  reload?: Reload;
}

/** Creates an auth plugin from `--auth-source`. */
export type AuthPluginFactory = (
  source: string | undefined,
  context: PluginContext,
) => AuthPlugin | Promise<AuthPlugin>;

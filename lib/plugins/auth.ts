/**
 * The built-in auth plugins (upstream's names and sources) and the glue that
 * runs a plugin before an upgrade or a `--web` request.
 *
 * @module
 */
import type { Authenticate } from "../http/app.ts";
import type { Logger } from "../log.ts";
import type { AuthPlugin, AuthPluginFactory } from "./plugins.ts";
import { AuthenticationError, errorText, isAuthenticationError } from "../errors.ts";
import { refuse } from "../http/refuse.ts";
import { clientLabel } from "../target.ts";

const CHALLENGE = { "WWW-Authenticate": 'Basic realm="Websockify"' };

/** Compares without an early exit, so timing does not reveal the password. */
function sameText(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i % (b.length || 1));
  return diff === 0;
}

/**
 * `BasicHTTPAuth`: source `user:password` (the password may contain `:`).
 *
 * @example
 * ```ts
 * import { basicHttpAuth } from "./auth.ts";
 *
 * const plugin = basicHttpAuth("admin:secret");
 * ```
 */
export function basicHttpAuth(source: string | undefined): AuthPlugin {
  if (!source?.includes(":")) {
    throw new TypeError("BasicHTTPAuth needs --auth-source=user:password");
  }
  return {
    authenticate({ headers }) {
      const header = headers.get("authorization");
      if (header === null) {
        throw new AuthenticationError("Unauthorized", { status: 401, headers: CHALLENGE });
      }
      if (!header.startsWith("Basic ")) throw new AuthenticationError("Forbidden");
      let decoded: string;
      try {
        decoded = atob(header.slice(6).trim());
      } catch {
        throw new AuthenticationError("Forbidden", { logMessage: "Malformed Basic credentials" });
      }
      if (!decoded.includes(":")) throw new AuthenticationError("Forbidden");
      if (!sameText(decoded, source)) {
        const user = decoded.slice(0, decoded.indexOf(":"));
        throw new AuthenticationError("Unauthorized", {
          status: 401,
          headers: CHALLENGE,
          logMessage: `Wrong credentials for user '${user}'`,
        });
      }
    },
  };
}

/** Splits a space-separated source into its words. */
function words(source: string | undefined, plugin: string): string[] {
  const list = (source ?? "").split(/\s+/).filter(Boolean);
  if (list.length === 0) throw new TypeError(`${plugin} needs --auth-source`);
  return list;
}

/**
 * `ExpectOrigin`: source is the space-separated list of allowed origins.
 *
 * @example
 * ```ts
 * import { expectOrigin } from "./auth.ts";
 *
 * const plugin = expectOrigin("https://console.example https://admin.example");
 * ```
 */
export function expectOrigin(source: string | undefined): AuthPlugin {
  const allowed = words(source, "ExpectOrigin");
  return {
    authenticate({ headers }) {
      const origin = headers.get("origin");
      if (origin === null || !allowed.includes(origin)) {
        const expected = allowed.map((o) => `'${o}'`).join(", ");
        throw new AuthenticationError("Invalid Origin", {
          logMessage: `Invalid Origin Header: Expected one of [${expected}], got '${origin ?? ""}'`,
        });
      }
    },
  };
}

/**
 * `ClientCertCNAuth`: source is the space-separated list of accepted client
 * certificate common names; needs `--verify-client`.
 *
 * @example
 * ```ts
 * import { clientCertCnAuth } from "./auth.ts";
 *
 * const plugin = clientCertCnAuth("alice bob");
 * ```
 */
export function clientCertCnAuth(source: string | undefined): AuthPlugin {
  const allowed = words(source, "ClientCertCNAuth");
  return {
    authenticate({ client }) {
      if (client.peerCn === undefined || !allowed.includes(client.peerCn)) {
        throw new AuthenticationError("Forbidden", {
          logMessage: `Client certificate CN '${client.peerCn ?? ""}' not accepted`,
        });
      }
    },
  };
}

/** The built-in auth plugins, by upstream's names; frozen, so no import can replace one. */
export const AUTH_PLUGINS: Readonly<Record<string, AuthPluginFactory>> = Object.freeze({
  BasicHTTPAuth: basicHttpAuth,
  ExpectOrigin: expectOrigin,
  ClientCertCNAuth: clientCertCnAuth,
});

/** The headers a plugin sees: no client-sent `SSL_*`, the verified CN added. */
function pluginHeaders(headers: Headers, peerCn: string | undefined): Headers {
  const clean = new Headers();
  headers.forEach((value, name) => {
    if (!name.toLowerCase().startsWith("ssl_")) clean.append(name, value);
  });
  if (peerCn !== undefined) clean.set("SSL_CLIENT_S_DN_CN", peerCn);
  return clean;
}

/**
 * Runs an auth plugin as the app's `authenticate` hook: a refusal becomes an
 * HTTP response with the plugin's status and headers, and a log line.
 *
 * @example
 * ```ts
 * import { SILENT_LOGGER } from "../log.ts";
 * import { basicHttpAuth, createAuthenticate } from "./auth.ts";
 *
 * const authenticate = createAuthenticate(basicHttpAuth("u:p"), SILENT_LOGGER);
 * ```
 */
export function createAuthenticate(plugin: AuthPlugin, log: Logger): Authenticate {
  return async (req, info, target) => {
    const headers = pluginHeaders(req.headers, info.peerCn);
    try {
      await plugin.authenticate({ headers, target, client: info });
      return undefined;
    } catch (error) {
      const client = clientLabel(info);
      if (isAuthenticationError(error)) {
        log.info(`${client}: Authentication failed: ${error.logMessage}`);
        return refuse(error.status, error.message, error.headers);
      }
      log.warn(
        `${client}: Authentication error: ${errorText(error)}`,
      );
      return refuse(500, "Authentication error");
    }
  };
}

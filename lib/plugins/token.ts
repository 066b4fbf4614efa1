/**
 * Tokens to targets: where the token comes from (the `token` query parameter,
 * or the Host header with `--host-token`) and how a lookup becomes a target
 * or a clear HTTP refusal (upstream silently drops the connection).
 *
 * @module
 */
import type { ResolveTarget } from "../http/app.ts";
import { logEvent, type Logger, tokenLabel } from "../log.ts";
import type { TokenPlugin } from "./plugins.ts";
import { errorText, isAuthenticationError } from "../errors.ts";
import { refuse, refuseFields } from "../http/refuse.ts";
import { clientLabel } from "../target.ts";

/**
 * The token of a request, or undefined when there is none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenFromRequest } from "./token.ts";
 *
 * assert.equal(tokenFromRequest(new Request("http://h/websockify?token=a%20b"), false), "a b");
 * const req = new Request("http://h/", { headers: { host: "vm1.example:6080" } });
 * assert.equal(tokenFromRequest(req, true), "vm1.example");
 * ```
 */
export function tokenFromRequest(req: Request, hostToken: boolean): string | undefined {
  let token: string | null;
  if (hostToken) {
    const host = req.headers.get("host") ?? "";
    token = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.split(":")[0]!;
  } else {
    token = new URL(req.url).searchParams.get("token")?.replace(/\n+$/, "") ?? null;
  }
  return token ? token : undefined;
}

/** Options for {@link createTokenResolver}. */
export interface TokenResolverOptions {
  plugin: TokenPlugin;
  /** Take the token from the Host header (`--host-token`). */
  hostToken?: boolean;
  log: Logger;
}

/**
 * Resolves targets through a token plugin: no token → 403, unknown token →
 * 404, a failing lookup → 503, each with a log line that names the token by
 * {@link tokenLabel}, never whole. A lookup that throws an
 * `AuthenticationError` gets that error's status.
 *
 * @example
 * ```ts
 * import { SILENT_LOGGER } from "../log.ts";
 * import { parseTarget } from "../target.ts";
 * import { createTokenResolver } from "./token.ts";
 *
 * const vm1 = parseTarget("10.0.0.5:5900");
 * const resolveTarget = createTokenResolver({
 *   plugin: { lookup: (token) => token === "vm1" ? vm1 : undefined },
 *   log: SILENT_LOGGER,
 * });
 * ```
 */
export function createTokenResolver(options: TokenResolverOptions): ResolveTarget {
  const { plugin, hostToken = false, log } = options;
  return async (req, info) => {
    const client = clientLabel(info);
    const token = tokenFromRequest(req, hostToken);
    if (token === undefined) {
      logEvent(log, "info", `${client}: Token not present`, refuseFields(info, 403));
      return refuse(403, "Token not present");
    }
    let target;
    try {
      target = await plugin.lookup(token);
    } catch (error) {
      // A plugin may refuse with its own status (an expired JWT: 403).
      if (isAuthenticationError(error)) {
        logEvent(
          log,
          "info",
          `${client}: Token '${tokenLabel(token)}' refused: ${error.logMessage}`,
          { ...refuseFields(info, error.status), token: tokenLabel(token) },
        );
        return refuse(error.status, error.message, error.headers);
      }
      logEvent(log, "warn", `${client}: Token lookup failed: ${errorText(error)}`, {
        ...refuseFields(info, 503),
        token: tokenLabel(token),
      });
      return refuse(503, "Token lookup failed");
    }
    if (!target) {
      logEvent(log, "info", `${client}: Token '${tokenLabel(token)}' not found`, {
        ...refuseFields(info, 404),
        token: tokenLabel(token),
      });
      return refuse(404, "Token not found");
    }
    return { target, token };
  };
}

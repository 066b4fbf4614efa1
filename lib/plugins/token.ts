/**
 * Tokens to targets: where the token comes from (`--token-from`: the query,
 * the path, a cookie, a header or the Host name) and how a lookup becomes a target
 * or a clear HTTP refusal (upstream silently drops the connection).
 *
 * @module
 */
import type { ResolveTarget } from "../http/app.ts";
import { logEvent, type Logger, tokenLabel } from "../log.ts";
import type { TokenPlugin } from "./plugins.ts";
import { errorText, isAuthenticationError, UsageError } from "../errors.ts";
import { refuse, refuseFields } from "../http/refuse.ts";
import { clientLabel } from "../target.ts";
import type { HeaderReader } from "../types.ts";

/**
 * One place a token may come from (`--token-from`): the `token` query
 * parameter, the last segment of a path of two or more segments, a cookie,
 * a header, or the Host name (`--host-token`).
 */
export type TokenSource =
  | { readonly kind: "query" | "path" | "host" }
  | { readonly kind: "cookie" | "header"; readonly name: string };

/** The default: the `token` query parameter, as upstream. */
export const QUERY_TOKEN: readonly TokenSource[] = [{ kind: "query" }];

/** The Host name as the token (`--host-token`). */
export const HOST_TOKEN: readonly TokenSource[] = [{ kind: "host" }];

// RFC 9110 token characters: what header and cookie names are made of.
const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Parses `--token-from=LIST`: comma-separated `query`, `path`, `host`,
 * `cookie:NAME`, `header:NAME`. Throws {@link UsageError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTokenFrom } from "./token.ts";
 *
 * assert.deepEqual(parseTokenFrom("path,cookie:vnc"), [
 *   { kind: "path" },
 *   { kind: "cookie", name: "vnc" },
 * ]);
 * ```
 */
export function parseTokenFrom(list: string): TokenSource[] {
  return list.split(",").map((item): TokenSource => {
    const entry = item.trim();
    if (entry === "query" || entry === "path" || entry === "host") return { kind: entry };
    const colon = entry.indexOf(":");
    const kind = entry.slice(0, colon);
    if (colon > 0 && (kind === "cookie" || kind === "header")) {
      const name = entry.slice(colon + 1);
      if (!NAME.test(name)) {
        throw new UsageError(`option --token-from: '${entry}' needs a valid ${kind} NAME`);
      }
      return { kind, name };
    }
    throw new UsageError(
      `option --token-from: unknown source '${entry}' ` +
        "(choose from query, path, cookie:NAME, header:NAME, host)",
    );
  });
}

/**
 * The token of a request, or undefined when there is none: the first of
 * `from` that yields one (default {@link QUERY_TOKEN}; `true` is
 * {@link HOST_TOKEN}, as `--host-token`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTokenFrom, tokenFromRequest } from "./token.ts";
 *
 * assert.equal(tokenFromRequest(new Request("http://h/websockify?token=a%20b"), false), "a b");
 * const req = new Request("http://h/", { headers: { host: "vm1.example:6080" } });
 * assert.equal(tokenFromRequest(req, true), "vm1.example");
 * const vnc = new Request("http://h/vnc/vm%201", { headers: { cookie: "t=vm2" } });
 * assert.equal(tokenFromRequest(vnc, parseTokenFrom("cookie:t,path")), "vm2");
 * assert.equal(tokenFromRequest(vnc, parseTokenFrom("path,cookie:t")), "vm 1");
 * ```
 */
export function tokenFromRequest(
  req: { readonly url: string; readonly headers: HeaderReader },
  from: boolean | readonly TokenSource[] = QUERY_TOKEN,
): string | undefined {
  const sources = from === true ? HOST_TOKEN : from === false ? QUERY_TOKEN : from;
  let url: URL | undefined;
  for (const source of sources) {
    let token: string | undefined;
    switch (source.kind) {
      case "query":
        url ??= new URL(req.url);
        token = url.searchParams.get("token")?.replace(/\n+$/, "");
        break;
      case "path":
        url ??= new URL(req.url);
        token = lastSegment(url.pathname);
        break;
      case "cookie":
        token = cookie(req.headers.get("cookie"), source.name);
        break;
      case "header":
        token = req.headers.get(source.name)?.trim();
        break;
      case "host": {
        const host = req.headers.get("host") ?? "";
        token = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.split(":")[0]!;
      }
    }
    if (token) return token;
  }
  return undefined;
}

/** The last segment of a path of two or more (`/vnc/TOKEN`), percent-decoded. */
function lastSegment(pathname: string): string | undefined {
  const slash = pathname.lastIndexOf("/");
  // One segment (`/websockify`, noVNC's default) names the endpoint, not a token.
  if (slash <= 0) return undefined;
  try {
    return decodeURIComponent(pathname.slice(slash + 1));
  } catch {
    return undefined; // a malformed escape: no token from here
  }
}

/** The value of cookie `name` (surrounding quotes removed), one pass over the header. */
function cookie(header: string | null, name: string): string | undefined {
  if (header === null) return undefined;
  for (const pair of header.split(";")) {
    const eq = pair.indexOf("=");
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
    const value = pair.slice(eq + 1).trim();
    return value.length >= 2 && value.startsWith('"') && value.endsWith('"')
      ? value.slice(1, -1)
      : value;
  }
  return undefined;
}

/** Options for {@link createTokenResolver}. */
export interface TokenResolverOptions {
  plugin: TokenPlugin;
  /** Where the token comes from, in order (`--token-from`); default {@link QUERY_TOKEN}. */
  tokenFrom?: readonly TokenSource[];
  /** Take the token from the Host header (`--host-token`): `tokenFrom` {@link HOST_TOKEN}. */
  hostToken?: boolean;
  log: Logger;
}

/**
 * Resolves targets through a token plugin: no token → 403, unknown token →
 * 404, a failing lookup → 503, each with a log line that names the token by
 * {@link tokenLabel}, never whole. A lookup that throws an
 * `AuthenticationError` gets that error's status. An accepted upgrade
 * carries the token with its target, for the session's log lines.
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
  const { plugin, log } = options;
  const from = options.tokenFrom ?? (options.hostToken ? HOST_TOKEN : QUERY_TOKEN);
  return async (req, info) => {
    const client = clientLabel(info);
    const token = tokenFromRequest(req, from);
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

/**
 * The HTTP token plugins, upstream's names and formats: `BaseTokenAPI` (the
 * answer is `host:port` text) and `JSONTokenApi` (the answer is JSON
 * `{"host": ..., "port": ...}`). Fixed over upstream: the token is
 * URL-encoded into the URL and a lookup has a time limit.
 *
 * @module
 */
import { TOKEN_API_TIMEOUT_MS } from "../../lib/limits.ts";
import { errorText } from "../../lib/errors.ts";
import type { TokenPlugin } from "../../lib/plugins/plugins.ts";
import { parseHostPort, targetFromObject, tokenUrl } from "../../lib/plugins/token_target.ts";
import type { Target } from "../../lib/types.ts";
import { requireSource } from "./token_fs.ts";

/** Options for {@link baseTokenApi} and {@link jsonTokenApi}. */
export interface TokenApiOptions {
  /** The limit for one lookup, answer included; 5000 ms by default. */
  timeoutMs?: number;
}

/** Why a fetch failed, in one line: the cause's code where there is one. */
function fetchError(error: unknown, timeoutMs: number): Error {
  if ((error as Error | null)?.name === "TimeoutError") {
    return new Error(`Token API did not answer within ${timeoutMs} ms`);
  }
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const why = cause?.code ?? cause?.message ?? (error as Error).message ?? String(error);
  return new Error(`Cannot reach the token API: ${why}`);
}

function apiPlugin(
  plugin: string,
  source: string | undefined,
  options: TokenApiOptions,
  parse: (body: string) => Target,
): TokenPlugin {
  const template = requireSource(source, plugin, "URL");
  const example = URL.canParse(tokenUrl(template, "x")) ? new URL(tokenUrl(template, "x")) : null;
  if (!template.includes("%s") || !/^https?:$/.test(example?.protocol ?? "")) {
    throw new TypeError(`${plugin} needs --token-source=URL, an http(s) URL with %s for the token`);
  }
  const timeoutMs = options.timeoutMs ?? TOKEN_API_TIMEOUT_MS;
  const failed = (error: unknown): never => {
    throw fetchError(error, timeoutMs);
  };
  return {
    // Reachable: any answer from the API's server will do.
    async ready() {
      const signal = AbortSignal.timeout(timeoutMs);
      const res = await fetch(new URL(tokenUrl(template, "")).origin, { method: "HEAD", signal })
        .catch(failed);
      await res.body?.cancel().catch(() => {});
    },
    async lookup(token) {
      const signal = AbortSignal.timeout(timeoutMs);
      const res = await fetch(tokenUrl(template, token), { signal }).catch(failed);
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        // 404 is "no such token"; anything else means the API cannot answer.
        if (res.status === 404) return undefined;
        throw new Error(`Token API answered ${res.status}`);
      }
      const body = await res.text().catch(failed);
      try {
        return parse(body);
      } catch (error) {
        throw new Error(`Cannot use the token API answer: ${errorText(error)}`);
      }
    },
  };
}

/**
 * `BaseTokenAPI`: GET the source URL with `%s` replaced by the token; a
 * status below 400 gives `host:port` text, 404 an unknown token, anything
 * else (5xx, no answer in time, a bad body) a failed lookup (503).
 *
 * @example
 * ```ts
 * import { baseTokenApi } from "./token_api.ts";
 *
 * const plugin = baseTokenApi("http://127.0.0.1:8000/lookup?token=%s");
 * ```
 */
export function baseTokenApi(
  source: string | undefined,
  options: TokenApiOptions = {},
): TokenPlugin {
  return apiPlugin("BaseTokenAPI", source, options, parseHostPort);
}

/**
 * `JSONTokenApi`: as {@link baseTokenApi}, but the answer is JSON with
 * `host` and `port` (a number or a string).
 *
 * @example
 * ```ts
 * import { jsonTokenApi } from "./token_api.ts";
 *
 * const plugin = jsonTokenApi("https://inventory.example/vms/%s/console");
 * ```
 */
export function jsonTokenApi(
  source: string | undefined,
  options: TokenApiOptions = {},
): TokenPlugin {
  return apiPlugin("JSONTokenApi", source, options, (body) => targetFromObject(JSON.parse(body)));
}

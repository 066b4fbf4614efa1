/**
 * Finds plugins by upstream's names (`TokenFile`, `BasicHTTPAuth`, also in
 * the dotted `websockify.token_plugins.TokenFile` form) or loads a custom
 * module by path, on every runtime (`./plugin.ts` or `./plugin.js#exportName`;
 * the export defaults to `tokenPlugin` / `authPlugin`).
 *
 * @module
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import { AUTH_PLUGINS } from "../../lib/plugins/auth.ts";
import { ConfigError, errorText } from "../../lib/errors.ts";
import { SILENT_LOGGER } from "../../lib/log.ts";
import type {
  AuthPlugin,
  AuthPluginFactory,
  PluginContext,
  TokenPlugin,
  TokenPluginFactory,
} from "../../lib/plugins/plugins.ts";
import { tokenRedis } from "./token_redis.ts";
import { baseTokenApi, jsonTokenApi } from "./token_api.ts";
import { readOnlyTokenFile, tokenFile, tokenFileName } from "./token_file.ts";
import { unixSocketDirectory } from "./token_unix.ts";

/** The built-in token plugins, by upstream's names; frozen, so no import can replace one. */
export const TOKEN_PLUGINS: Readonly<Record<string, TokenPluginFactory>> = Object.freeze({
  TokenRedis: tokenRedis,
  TokenFile: (source) => tokenFile(source),
  ReadOnlyTokenFile: readOnlyTokenFile,
  TokenFileName: tokenFileName,
  BaseTokenAPI: (source) => baseTokenApi(source),
  JSONTokenApi: (source) => jsonTokenApi(source),
  // Loaded on use: importing jose slows every start-up otherwise
  // (`bench/README.md`, "Figures behind design choices").
  JWTTokenApi: async (source) => (await import("./token_jwt.ts")).jwtTokenApi(source),
  UnixDomainSocketDirectory: unixSocketDirectory,
});

const isPath = (name: string) => /^\.{0,2}\//.test(name) || /\.[cm]?[jt]s(#|$)/.test(name);

async function factory<T>(
  kind: "token" | "auth",
  name: string,
  builtIn: Readonly<Record<string, T>>,
): Promise<T> {
  if (!isPath(name)) {
    // Own names only: `constructor` or `toString` must not find Object's.
    const short = name.slice(name.lastIndexOf(".") + 1);
    if (Object.hasOwn(builtIn, short)) return builtIn[short]!;
    throw new ConfigError(
      `Unknown ${kind} plugin '${name}' (built in: ${Object.keys(builtIn).join(", ")})`,
    );
  }
  const [file, exportName = `${kind}Plugin`] = name.split("#") as [string, string?];
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(path.resolve(file)).href);
  } catch (error) {
    throw new ConfigError(`Cannot load ${kind} plugin "${file}": ${errorText(error)}`);
  }
  const found = mod[exportName];
  if (typeof found !== "function") {
    throw new ConfigError(`${kind} plugin "${file}" does not export a function '${exportName}'`);
  }
  return found as T;
}

async function create<T>(
  make: (source: string | undefined, context: PluginContext) => T | Promise<T>,
  name: string,
  source: string | undefined,
  context: PluginContext,
): Promise<T> {
  try {
    return await make(source, context);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`Cannot start plugin '${name}': ${errorText(error)}`);
  }
}

/**
 * Creates a token plugin from `--token-plugin` and `--token-source`.
 *
 * @example
 * ```ts
 * import { loadTokenPlugin } from "./plugins.ts";
 *
 * const open = () => loadTokenPlugin("TokenFile", "/etc/websockify/tokens");
 * ```
 */
export async function loadTokenPlugin(
  name: string,
  source?: string,
  context: PluginContext = { log: SILENT_LOGGER },
): Promise<TokenPlugin> {
  const make = await factory<TokenPluginFactory>("token", name, TOKEN_PLUGINS);
  return create(make, name, source, context);
}

/**
 * Creates an auth plugin from `--auth-plugin` and `--auth-source`.
 *
 * @example
 * ```ts
 * import { loadAuthPlugin } from "./plugins.ts";
 *
 * const plugin = await loadAuthPlugin("BasicHTTPAuth", "admin:secret");
 * ```
 */
export async function loadAuthPlugin(
  name: string,
  source?: string,
  context: PluginContext = { log: SILENT_LOGGER },
): Promise<AuthPlugin> {
  const make = await factory<AuthPluginFactory>("auth", name, AUTH_PLUGINS);
  return create(make, name, source, context);
}

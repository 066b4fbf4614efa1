/**
 * `TokenRedis`: tokens in Redis (`GET namespace:token`), so any number of
 * proxies share one token store and see changes at once. Unlike upstream (a
 * new connection per lookup), one client lives as long as the plugin, and
 * reconnects in the background while Redis is away.
 *
 * Lookups never wait for Redis: while it is unreachable they fail at once
 * (no offline queue), and an unresponsive server fails them after
 * {@link REDIS_TIMEOUT_MS}; a failed lookup answers 503 with a log line.
 * Start-up waits as long for the first connection, then goes on without
 * one, except that a refused password or database fails start-up.
 * Source and value formats: `lib/plugins/token_redis.ts`.
 *
 * @example
 * ```ts
 * import { tokenRedis } from "./token_redis.ts";
 *
 * // websockify --token-plugin=TokenRedis --token-source='redis.lan::2::vnc' 6080
 * async function lookup(token: string) {
 *   const plugin = await tokenRedis("127.0.0.1:6379");
 *   const target = await plugin.lookup(token); // { kind: "tcp", hostname: "10.0.0.5", port: 5900 }
 *   await plugin.close?.();
 *   return target;
 * }
 * ```
 *
 * @module
 */
import {
  REDIS_BACKOFF_FIRST_MS,
  REDIS_BACKOFF_MAX_MS,
  REDIS_QUEUE_MAX,
  REDIS_TIMEOUT_MS,
} from "../../lib/limits.ts";
import { errorText } from "../../lib/errors.ts";
import { tokenLabel } from "../../lib/log.ts";
import type { TokenPlugin } from "../../lib/plugins/plugins.ts";
import { formatAddr } from "../../lib/target.ts";
import { parseRedisSource, parseRedisValue } from "../../lib/plugins/token_redis.ts";

/** Reconnect back-off: doubling from the first delay to the longest. */
const backoff = (retries: number) =>
  Math.min(REDIS_BACKOFF_FIRST_MS * 2 ** retries, REDIS_BACKOFF_MAX_MS);

/** Rejects with `why` unless `promise` settles within `ms`. */
function deadline<T>(promise: Promise<T>, ms: number, why: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(why)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * Creates the `TokenRedis` plugin from `host[:port[:db[:password[:namespace]]]]`.
 *
 * @param source The `--token-source` value.
 * @returns The plugin, with its client connected or reconnecting.
 * @throws {ConfigError} On a malformed source; an Error when Redis refuses
 * the password or database.
 * @example
 * ```ts
 * import { tokenRedis } from "./token_redis.ts";
 *
 * const open = () => tokenRedis('127.0.0.1:6379:0::"vnc:prod"');
 * ```
 */
export async function tokenRedis(source: string | undefined): Promise<TokenPlugin> {
  const config = parseRedisSource(source);
  const where = `Redis at ${formatAddr({ hostname: config.host, port: config.port })}`;
  // Loaded here, so proxies without TokenRedis never load the client.
  const { createClient, ErrorReply } = await import("@redis/client");
  let starting = true;
  let lastError: unknown;
  const client = createClient({
    socket: {
      host: config.host,
      port: config.port,
      connectTimeout: REDIS_TIMEOUT_MS,
      // A refused password or database at start-up is a setting to fix, not an outage.
      reconnectStrategy: (retries, cause) =>
        starting && cause instanceof ErrorReply ? cause : backoff(retries),
    },
    database: config.db,
    password: config.password,
    name: "websockify",
    disableOfflineQueue: true,
    commandsQueueMaxLength: REDIS_QUEUE_MAX,
  });
  client.on("error", (error: unknown) => (lastError = error));
  client.on("ready", () => (lastError = undefined));
  const connected = client.connect().then(() => undefined, (error: unknown) => error);
  const failed = await deadline(connected, REDIS_TIMEOUT_MS, "").catch(() => undefined);
  starting = false;
  if (failed) throw new Error(`${where} refused the connection: ${errorText(failed)}`);

  const unavailable = () =>
    new Error(`${where} is unavailable${lastError ? `: ${errorText(lastError)}` : ""}`);
  return {
    async ready() {
      if (!client.isReady) throw unavailable();
      try {
        await deadline(client.ping(), REDIS_TIMEOUT_MS, `no answer in ${REDIS_TIMEOUT_MS} ms`);
      } catch (error) {
        throw new Error(`${where}: PING failed: ${errorText(error)}`);
      }
    },
    async lookup(token) {
      if (!client.isReady) throw unavailable();
      const key = config.prefix + token;
      // Errors reach the log: they name the token by its label, never whole.
      const shownKey = config.prefix + tokenLabel(token);
      let value: string | null;
      try {
        const get = client.get(key);
        value = await deadline(get, REDIS_TIMEOUT_MS, `no answer in ${REDIS_TIMEOUT_MS} ms`);
      } catch (error) {
        throw new Error(`${where}: GET "${shownKey}" failed: ${errorText(error)}`);
      }
      return value === null ? undefined : parseRedisValue(value, shownKey);
    },
    async close() {
      // close() sends nothing new and waits for lookups in flight: bounded, then dropped.
      await deadline(client.close(), REDIS_TIMEOUT_MS, "close").catch(() => client.destroy());
    },
  };
}

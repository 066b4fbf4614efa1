/**
 * File helpers shared by the file-backed token plugins: a cache re-read only
 * when its files change (checked by stat on every use), names kept inside a
 * directory, and one-line error texts.
 *
 * @module
 */
import type { BigIntStats, Stats } from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { TOKEN_FILE_RACY_MS } from "../../lib/limits.ts";

/** What a source looks like on disk, by stat alone. */
export interface Signature {
  /** Identity, size and times of every file: equal keys mean unchanged data. */
  readonly key: string;
  /** The newest modification time among the files, in ms since the epoch. */
  readonly newestMs: number;
}

/** Options for {@link reloading}. */
export interface ReloadingOptions<T> {
  /** Cheap: changes when the data on disk does (stat, not read). */
  signature(): Promise<Signature>;
  /** Expensive: reads and parses. A failure is cached like a value. */
  load(): Promise<T>;
  /** Reuse a check this long without looking again; 0 (every call checks) by default. */
  intervalMs?: number;
}

/**
 * Returns a getter for data that is re-loaded only when its signature
 * changed. Every call sees each change made before it started (deployments
 * write a token and send the browser at once): it waits for a signature
 * taken after it began, shared with the calls that arrive meanwhile, so a
 * burst costs one stat pass, not one per call. No watcher to leak.
 *
 * @example
 * ```ts
 * import fsp from "node:fs/promises";
 * import { reloading, statSignature } from "./token_fs.ts";
 *
 * const file = "/etc/websockify/tokens";
 * const get = reloading({
 *   signature: () => statSignature(file),
 *   load: () => fsp.readFile(file, "utf8"),
 * });
 * // await get() reads the file once, then again only after it changed
 * ```
 */
export function reloading<T>(options: ReloadingOptions<T>): () => Promise<T> {
  const { signature, load, intervalMs = 0 } = options;
  let checkedAt = -Infinity;
  let current: { key?: string; value: Promise<T> } | undefined;
  /** The check running now, and the one queued to start after it. */
  let running: Promise<unknown> = Promise.resolve();
  let queued: Promise<T> | undefined;
  const check = async (): Promise<T> => {
    const startedAt = Date.now();
    try {
      // Taken before reading: an edit during the read changes it for the next call.
      const sig = await signature();
      if (current?.key !== sig.key) {
        const trusted = sig.newestMs < startedAt - TOKEN_FILE_RACY_MS;
        current = { key: trusted ? sig.key : undefined, value: load() };
      }
    } catch (error) {
      current = { value: Promise.reject(error) };
    }
    checkedAt = Date.now();
    current.value.catch(() => {}); // handled by whoever awaits it
    return current.value;
  };
  return () => {
    if (current && intervalMs > 0 && Date.now() - checkedAt < intervalMs) return current.value;
    // Join a check only if it has not started: one under way may have missed this call's change.
    return queued ??= (() => {
      const next = running.then(() => {
        queued = undefined;
        return check();
      });
      running = next.catch(() => {});
      return next;
    })();
  };
}

/**
 * The signature of one file: changes when it is edited or replaced.
 *
 * @example
 * ```ts
 * import { statSignature } from "./token_fs.ts";
 *
 * const signature = await statSignature("/etc/passwd");
 * console.log(signature.key); // "2049:4242:120:1732190000123456789:..."
 * ```
 */
export async function statSignature(file: string): Promise<Signature> {
  const s = await fsp.stat(file, { bigint: true });
  return { key: statKey(s), newestMs: Number(s.mtimeMs) };
}

/**
 * Identity, size and both times in nanoseconds (Deno reports whole
 * milliseconds and seconds: {@link reloading} allows for that).
 *
 * @example
 * ```ts
 * import fsp from "node:fs/promises";
 * import { statKey } from "./token_fs.ts";
 *
 * console.log(statKey(await fsp.stat("/etc/passwd", { bigint: true })));
 * ```
 */
export function statKey(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/**
 * The real path of `name` inside the real directory `root`, or undefined when
 * there is no such file or `name` would leave `root`: empty, `.`, `..`, a
 * slash (so no absolute paths or subdirectories), NUL, or a symlink whose
 * target is outside `root`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fileInside } from "./token_fs.ts";
 *
 * assert.equal(await fileInside("/etc", "passwd"), "/etc/passwd");
 * assert.equal(await fileInside("/etc", "../etc/passwd"), undefined);
 * ```
 */
export async function fileInside(root: string, name: string): Promise<string | undefined> {
  if (name === "" || name === "." || name === ".." || /[/\\\0]/.test(name)) return undefined;
  let real: string;
  try {
    real = await fsp.realpath(path.join(root, name));
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  const prefix = root.endsWith(path.sep) ? root : root + path.sep;
  return real.startsWith(prefix) ? real : undefined;
}

/**
 * The stat of `file`, or undefined when it does not exist (any more).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statIfExists } from "./token_fs.ts";
 *
 * assert.equal((await statIfExists("/"))?.isDirectory(), true);
 * assert.equal(await statIfExists("/no/such/file"), undefined);
 * ```
 */
export async function statIfExists(file: string): Promise<Stats | undefined> {
  try {
    return await fsp.stat(file);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/**
 * True for errors that mean "no such file" rather than "cannot look".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isMissing } from "./token_fs.ts";
 *
 * assert.equal(isMissing(Object.assign(new Error("x"), { code: "ENOENT" })), true);
 * ```
 */
export function isMissing(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return ["ENOENT", "ENOTDIR", "ELOOP", "ENAMETOOLONG"].includes(code as string);
}

/**
 * The plugin's source, or a {@link TypeError} naming what is expected.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requireSource } from "./token_fs.ts";
 *
 * assert.throws(() => requireSource(undefined, "TokenFile", "FILE"), {
 *   message: "TokenFile needs --token-source=FILE",
 * });
 * ```
 */
export function requireSource(source: string | undefined, plugin: string, what: string): string {
  if (!source) throw new TypeError(`${plugin} needs --token-source=${what}`);
  return source;
}

/**
 * The real path of a directory source, or a {@link TypeError} with upstream's
 * message ("TokenFileName plugin requires a directory").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requireDirectory } from "./token_fs.ts";
 *
 * assert.equal(await requireDirectory("/tmp", "UnixDomainSocketDirectory"), "/tmp");
 * ```
 */
export async function requireDirectory(
  source: string | undefined,
  plugin: string,
): Promise<string> {
  const dir = requireSource(source, plugin, "DIR");
  const real = await fsp.realpath(dir).catch(() => undefined);
  if (real === undefined || !(await fsp.stat(real)).isDirectory()) {
    throw new TypeError(`${plugin} plugin requires a directory`);
  }
  return real;
}

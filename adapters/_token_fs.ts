/**
 * File helpers shared by the file-backed token plugins: a cache re-read only
 * when its files change, names kept inside a directory, and one-line error
 * texts.
 *
 * @module
 */
import type { Stats } from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

/** Options for {@link reloading}. */
export interface ReloadingOptions<T> {
  /** Cheap: a string that changes when the data on disk does (stat, not read). */
  signature(): Promise<string>;
  /** Expensive: reads and parses. A failure is cached like a value. */
  load(): Promise<T>;
  /** Check the signature at most this often; 1000 ms by default. */
  intervalMs?: number;
}

/**
 * Returns a getter for data that is re-loaded only when its signature
 * changed, and the signature checked at most once per interval, however
 * many lookups arrive: no watcher to leak, no re-read per connection.
 *
 * @example
 * ```ts
 * const get = reloading({ signature: () => statSignature(file), load: () => readTargets(file) });
 * const targets = await get();
 * ```
 */
export function reloading<T>(options: ReloadingOptions<T>): () => Promise<T> {
  const { signature, load, intervalMs = 1000 } = options;
  let checkedAt = -Infinity;
  let current: { signature?: string; value: Promise<T> } | undefined;
  let checking: Promise<T> | undefined;
  const check = async (): Promise<T> => {
    try {
      // The signature is taken before reading: an edit during the read shows next time.
      const sig = await signature();
      if (current?.signature !== sig) current = { signature: sig, value: load() };
    } catch (error) {
      current = { value: Promise.reject(error) };
    } finally {
      checkedAt = Date.now();
      checking = undefined;
    }
    current.value.catch(() => {}); // handled by whoever awaits it
    return current.value;
  };
  return () => {
    if (current && Date.now() - checkedAt < intervalMs) return current.value;
    return checking ??= check();
  };
}

/**
 * A signature of one file: changes when it is edited or replaced.
 *
 * @example
 * ```ts
 * await statSignature("/etc/websockify/tokens"); // "1732190000123.45:1732190000123.45:120:4242"
 * ```
 */
export async function statSignature(file: string): Promise<string> {
  const s = await fsp.stat(file);
  // Deno's mtimeMs is whole milliseconds: ctime, size and inode catch more edits.
  return `${s.mtimeMs}:${s.ctimeMs}:${s.size}:${s.ino}`;
}

/**
 * The real path of `name` inside the real directory `root`, or undefined when
 * there is no such file or `name` would leave `root`: empty, `.`, `..`, a
 * slash (so no absolute paths or subdirectories), NUL, or a symlink whose
 * target is outside `root`.
 *
 * @example
 * ```ts
 * await fileInside("/run/vnc", "vm1.sock"); // "/run/vnc/vm1.sock"
 * await fileInside("/run/vnc", "../etc/passwd"); // undefined
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
 * (await statIfExists("/run/vnc/vm1.sock"))?.isSocket(); // true
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
 * isMissing(Object.assign(new Error("x"), { code: "ENOENT" })); // true
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
 * requireSource(undefined, "TokenFile", "FILE"); // throws: TokenFile needs --token-source=FILE
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
 * await requireDirectory("/run/vnc", "UnixDomainSocketDirectory"); // "/run/vnc"
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

/**
 * The file-backed token plugins, upstream's names and formats: `TokenFile`
 * (a file or a directory of files, changes picked up without a restart),
 * `ReadOnlyTokenFile` (read once) and `TokenFileName` (one file per token).
 *
 * @module
 */
import { describeError, errorText } from "../../lib/errors.ts";
import { type BigIntStats, constants as fsConstants } from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { TokenPlugin } from "../../lib/plugins/plugins.ts";
import { parseTokenFiles } from "../../lib/plugins/token_file.ts";
import { parseHostPort } from "../../lib/plugins/token_target.ts";
import type { Target } from "../../lib/types.ts";
import {
  fileInside,
  reloading,
  requireDirectory,
  requireSource,
  type Signature,
  statIfExists,
  statKey,
} from "./token_fs.ts";

/** A file of a source and its stat. */
interface SourceFile {
  readonly file: string;
  readonly stat: BigIntStats;
}

/** The files of a source: itself, or a directory's regular files by name. */
async function sourceFiles(source: string): Promise<SourceFile[]> {
  const stat = await fsp.stat(source, { bigint: true });
  if (!stat.isDirectory()) return [{ file: source, stat }];
  const names = (await fsp.readdir(source)).sort();
  const found = await Promise.all(names.map(async (name) => {
    const file = path.join(source, name);
    // stat, not lstat: a symlink to a file counts, as Python's is_file().
    const stat = await fsp.stat(file, { bigint: true }).catch(() => undefined);
    return stat?.isFile() ? { file, stat } : undefined;
  }));
  return found.filter((f) => f !== undefined);
}

/** Reads and parses every file of a source; errors name the source. */
async function readTokenSource(source: string): Promise<Map<string, Target>> {
  let texts: string[];
  try {
    const files = await sourceFiles(source);
    texts = await Promise.all(files.map(({ file }) => fsp.readFile(file, "utf8")));
  } catch (error) {
    throw new Error(`Cannot read "${source}": ${describeError(error)}`);
  }
  return parseTokenFiles(texts, source);
}

/** Changes when any file of the source is edited, added or removed: one stat each. */
async function sourceSignature(source: string): Promise<Signature> {
  let files: SourceFile[];
  try {
    files = await sourceFiles(source);
  } catch (error) {
    throw new Error(`Cannot read "${source}": ${describeError(error)}`);
  }
  return {
    key: files.map(({ file, stat }) => `${file}=${statKey(stat)}`).join("\n"),
    newestMs: files.reduce((newest, { stat }) => Math.max(newest, Number(stat.mtimeMs)), 0),
  };
}

/** Options for {@link tokenFile}. */
export interface TokenFileOptions {
  /**
   * Trust a check for changes this long; 0 by default: every lookup stats
   * the files and sees each change made before it started.
   */
  checkIntervalMs?: number;
}

/**
 * `TokenFile`: lines `token: host:port` in a file, or in every regular file
 * of a directory. Every lookup stats the files and re-reads them when one
 * changed, so a token written just before a client connects is found (as
 * upstream, which re-reads per lookup). A syntax error fails start-up; one
 * that appears later fails lookups (503) until fixed.
 *
 * @example
 * ```ts
 * import { tokenFile } from "./token_file.ts";
 *
 * async function lookup(token: string) {
 *   const plugin = await tokenFile("/etc/websockify/tokens");
 *   return await plugin.lookup(token); // { kind: "tcp", hostname: "10.0.0.5", port: 5900 }
 * }
 * ```
 */
export async function tokenFile(
  source: string | undefined,
  options: TokenFileOptions = {},
): Promise<TokenPlugin> {
  const file = requireSource(source, "TokenFile", "FILE");
  const targets = reloading({
    signature: () => sourceSignature(file),
    load: () => readTokenSource(file),
    intervalMs: options.checkIntervalMs,
  });
  await targets();
  return {
    lookup: async (token) => (await targets()).get(token),
    ready: async () => void await targets(),
  };
}

/**
 * `ReadOnlyTokenFile`: the `TokenFile` format, read at start-up and again
 * only on reload (SIGHUP).
 *
 * @example
 * ```ts
 * import { readOnlyTokenFile } from "./token_file.ts";
 *
 * const open = () => readOnlyTokenFile("/etc/websockify/tokens");
 * ```
 */
export async function readOnlyTokenFile(source: string | undefined): Promise<TokenPlugin> {
  const file = requireSource(source, "ReadOnlyTokenFile", "FILE");
  let targets = await readTokenSource(file);
  return {
    lookup: (token) => targets.get(token),
    // Read once (and on reload), but an operator still learns that the file went away.
    ready: () => readable(file),
    async reload() {
      const read = await readTokenSource(file);
      return () => void (targets = read);
    },
  };
}

/**
 * `TokenFileName`: the token names a file in the source directory (only its
 * last path segment counts, as upstream) holding `host:port`. Never reads
 * outside the directory, symlinks included.
 *
 * @example
 * ```ts
 * import { tokenFileName } from "./token_file.ts";
 *
 * async function lookup(token: string) {
 *   const plugin = await tokenFileName("/etc/websockify/tokens.d");
 *   return await plugin.lookup(token); // the target in /etc/websockify/tokens.d/<token>
 * }
 * ```
 */
export async function tokenFileName(source: string | undefined): Promise<TokenPlugin> {
  const root = await requireDirectory(source, "TokenFileName");
  return {
    ready: () => readable(root),
    async lookup(token) {
      const file = await fileInside(root, token.slice(token.lastIndexOf("/") + 1));
      const stat = file === undefined ? undefined : await statIfExists(file);
      if (!stat?.isFile()) return undefined;
      const text = await fsp.readFile(file!, "utf8");
      try {
        return parseHostPort(text);
      } catch (error) {
        throw new Error(`Cannot use "${file}": ${errorText(error)}`);
      }
    },
  };
}

/** Resolves when `file` (or directory) can be read; rejects with the reason. */
async function readable(file: string): Promise<void> {
  try {
    await fsp.access(file, fsConstants.R_OK);
  } catch (error) {
    throw new Error(`Cannot read "${file}": ${describeError(error)}`);
  }
}

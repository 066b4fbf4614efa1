/**
 * The file system for `--web`, on `node:fs` (the same on all three runtimes).
 *
 * @module
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { WHOLE_FILE_BYTES } from "../../lib/limits.ts";
import { ConfigError } from "../../lib/errors.ts";
import type { WebFs } from "../../lib/http/web.ts";

/** `node:fs` as the web server's {@link WebFs}. */
export const nodeFs: WebFs = {
  async stat(path) {
    try {
      const s = await fsp.stat(path);
      return {
        isFile: s.isFile(),
        isDirectory: s.isDirectory(),
        size: s.size,
        mtime: s.mtime,
        id: `${s.dev}:${s.ino}`,
      };
    } catch {
      return undefined;
    }
  },
  realPath: (path) => fsp.realpath(path),
  async readDir(path) {
    const entries = await fsp.readdir(path, { withFileTypes: true });
    return entries.map((e) => ({ name: e.name, isDirectory: e.isDirectory() }));
  },
  // Web assets are small: one read, one write. Deno's node:https stalls on
  // streamed bodies over TLS, so only large files are streamed.
  read: async (path, size) =>
    size <= WHOLE_FILE_BYTES
      ? new Uint8Array(await fsp.readFile(path))
      : Readable.toWeb(fs.createReadStream(path)) as ReadableStream<Uint8Array>,
};

/** Resolves the web root to an absolute real path; throws {@link ConfigError}. */
export async function resolveWebRoot(dir: string): Promise<string> {
  const real = await fsp.realpath(dir).catch(() => undefined);
  if (real === undefined || !(await fsp.stat(real)).isDirectory()) {
    throw new ConfigError(`Cannot serve --web "${dir}": not a directory`);
  }
  return real;
}

/** The given paths resolved against the current directory; unset ones dropped. */
export function absolutePaths(paths: readonly (string | undefined)[]): string[] {
  return paths.filter((p): p is string => !!p).map((p) => path.resolve(p));
}

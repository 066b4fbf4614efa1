/**
 * Finds or builds `rebind.so`, the `LD_PRELOAD` library of wrap mode. The C
 * source ships with the package (`rebind/rebind.c`); the library is built
 * with `$CC` (default `cc`) on first use into the user's cache directory,
 * named by a hash of source and flags, so an upgrade rebuilds it and
 * concurrent starts do not clash (each renames its own finished file).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { ConfigError, errorText } from "../../lib/errors.ts";
import { NO_COMPILER_TEXT } from "../../lib/process/wrap.ts";

/** The flags `rebind/Makefile` uses too. */
const CFLAGS = ["-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-O2"];

/** `rebind.c` from source (`adapters/process/`) and from the npm build (`dist/adapters/process/`). */
const SOURCES = ["../../rebind/rebind.c", "../../../rebind/rebind.c"];

/** Reads `rebind.c` next to this module; over HTTP(S) when loaded from JSR. */
async function readSource(): Promise<string> {
  for (const relative of SOURCES) {
    const url = new URL(relative, import.meta.url);
    if (url.protocol !== "file:") {
      const res = await fetch(url).catch(() => undefined);
      if (res?.ok) return await res.text();
      await res?.body?.cancel();
      continue;
    }
    try {
      return await fs.readFile(fileURLToPath(url), "utf8");
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") throw error;
    }
  }
  throw new ConfigError("Cannot find rebind/rebind.c next to the websockify modules");
}

/** `$XDG_CACHE_HOME/websockify`, else `~/.cache/websockify`. */
function cacheDir(env: Record<string, string | undefined>): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "websockify");
}

/** Runs the compiler; rejects with its output. */
function compile(cc: readonly string[], args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cc[0]!, [...cc.slice(1), ...args], (error, _stdout, stderr) => {
      if (!error) return resolve();
      const code = (error as { code?: unknown }).code;
      if (code === "ENOENT") return reject(new ConfigError(NO_COMPILER_TEXT));
      const first = stderr.split("\n").find((l) => /error/i.test(l)) ?? stderr.split("\n")[0];
      reject(new ConfigError(`Cannot build rebind.so with ${cc.join(" ")}: ${first || error}`));
    });
  });
}

/**
 * The path of a built `rebind.so`, building it first if needed. Throws a
 * {@link ConfigError} with a one-line message when it cannot.
 *
 * @param env Where `CC` and `XDG_CACHE_HOME` are read (default `process.env`).
 * @example
 * ```ts
 * import { rebindLibrary } from "./rebind.ts";
 *
 * // Compiles rebind/rebind.c on first use, then reuses the copy in the cache:
 * const build = () => rebindLibrary(); // ~/.cache/websockify/rebind-3f2a….so
 * ```
 */
export async function rebindLibrary(
  env: Record<string, string | undefined> = process.env,
): Promise<string> {
  if (process.platform === "darwin" || process.platform === "win32") {
    throw new ConfigError(`Wrap mode needs LD_PRELOAD, which ${process.platform} does not have`);
  }
  // As make does: $CC may carry flags ("gcc -m32").
  const cc = (env.CC?.trim() || "cc").split(/\s+/);
  const source = await readSource();
  const hash = createHash("sha256").update(source).update(CFLAGS.join(" ")).digest("hex");
  const dir = cacheDir(env);
  const so = path.join(dir, `rebind-${hash.slice(0, 16)}.so`);
  if (await fs.access(so).then(() => true, () => false)) return so;
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new ConfigError(`Cannot create "${dir}": ${errorText(error)}`);
  }
  const tmp = `${so}.${process.pid}.tmp`;
  const src = `${tmp}.c`;
  try {
    await fs.writeFile(src, source);
    await compile(cc, [...CFLAGS, "-o", tmp, src, "-ldl"]);
    await fs.rename(tmp, so);
  } finally {
    await Promise.all([fs.rm(src, { force: true }), fs.rm(tmp, { force: true })]);
  }
  return so;
}

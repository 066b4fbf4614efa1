/**
 * `UnixDomainSocketDirectory`: the token names a unix socket in the source
 * directory, as v0.13.0 (upstream HEAD lets `..` through and hands the
 * connector a path object it cannot use).
 *
 * @module
 */
import type { TokenPlugin } from "../../lib/plugins/plugins.ts";
import { fileInside, requireDirectory, statIfExists } from "./token_fs.ts";

/**
 * `UnixDomainSocketDirectory`: token `vm1.sock` → the socket
 * `SOURCE/vm1.sock`. Names with a slash, `.`, `..`, symlinks that leave the
 * directory and files that are not sockets are unknown tokens (404).
 *
 * @example
 * ```ts
 * import { unixSocketDirectory } from "./token_unix.ts";
 *
 * async function lookup(token: string) {
 *   const plugin = await unixSocketDirectory("/run/vnc");
 *   return await plugin.lookup(token); // "vm1.sock": { kind: "unix", path: "/run/vnc/vm1.sock" }
 * }
 * ```
 */
export async function unixSocketDirectory(source: string | undefined): Promise<TokenPlugin> {
  const root = await requireDirectory(source, "UnixDomainSocketDirectory");
  return {
    async lookup(token) {
      const file = await fileInside(root, token);
      // The real path is returned: what was checked is what gets connected to.
      const stat = file === undefined ? undefined : await statIfExists(file);
      return stat?.isSocket() ? { kind: "unix", path: file! } : undefined;
    },
  };
}

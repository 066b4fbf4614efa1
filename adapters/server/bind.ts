/**
 * Binding the listening socket: a TCP address (the host name resolved), an
 * inherited fd, or a unix socket path claimed and put in place safely.
 *
 * @module
 */
import dns from "node:dns/promises";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import { dirname, join } from "node:path";
import process from "node:process";
import { UNIX_PROBE_MS } from "../../lib/limits.ts";
import type { NetAddr } from "../../lib/types.ts";
import { RUNTIME } from "../runtime.ts";

/** Where to listen: a TCP address, a unix socket path, or an inherited fd. */
export type ListenAt =
  | {
    /** Host name or address; empty means every address. */
    readonly hostname: string;
    readonly port: number;
    /** Prefer IPv6 when resolving `hostname` (`-6`). */
    readonly preferIpv6?: boolean;
    /** Share the port with other processes (SO_REUSEPORT; Deno and Bun). */
    readonly reusePort?: boolean;
  }
  | { readonly path: string; readonly mode?: number }
  | { readonly fd: number };

/** Resolves a host name to one address, IPv4 first unless `preferIpv6`. */
export async function resolveHost(hostname: string, preferIpv6 = false): Promise<string> {
  if (hostname === "") return preferIpv6 ? "::" : "0.0.0.0";
  if (net.isIP(hostname)) return hostname;
  const all = await dns.lookup(hostname, { all: true });
  const first = preferIpv6 ? 6 : 4;
  return (all.find((a) => a.family === first) ?? all[0]!).address;
}

/**
 * Call right after `server.close()`: Node's libuv never closes fds 0-2, so
 * an inherited listening socket there (`--inetd`'s fd 0) would stay open and
 * the kernel would go on queueing clients for it. Deno and Bun close it
 * themselves, and the fd may be reused since, so it is left alone there.
 */
export function releaseInherited(at: ListenAt): void {
  if (RUNTIME !== "node" || !("fd" in at) || at.fd > 2) return;
  try {
    fs.closeSync(at.fd);
    // Holds the fd, as dup2 would: a socket given it later would never be closed by libuv.
    fs.openSync("/dev/null", "r");
  } catch {
    // Already closed.
  }
}

/**
 * Starts listening. A unix socket gets its mode before any client can
 * connect (umask), as upstream; see {@link bindUnix} for its path.
 */
export async function bind(server: net.Server, at: ListenAt): Promise<NetAddr> {
  let restoreUmask: (() => void) | undefined;
  let listen: net.ListenOptions;
  let temp: string | undefined;
  // An inherited listening socket (`--inetd`); the types only know `handle`.
  if ("fd" in at) listen = { fd: at.fd } as net.ListenOptions;
  else if ("path" in at) {
    await claimSocketPath(at.path);
    temp = join(dirname(at.path), `.websockify-${process.pid}-${++unixBinds}.sock`);
    await fsp.rm(temp, { force: true });
    const old = process.umask(0o777 & ~(at.mode ?? 0o600));
    restoreUmask = () => process.umask(old);
    listen = { path: temp, backlog: 100 };
  } else {
    const host = await resolveHost(at.hostname, at.preferIpv6);
    // reusePort is newer than Node 20's types; Deno and Bun honour it.
    listen = { host, port: at.port, backlog: 511, reusePort: at.reusePort } as net.ListenOptions;
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } finally {
    restoreUmask?.();
  }
  if ("path" in at) {
    await bindUnix(server, temp!, at.path);
    return { hostname: at.path, port: 0 };
  }
  const bound = server.address() as net.AddressInfo;
  return { hostname: bound.address, port: bound.port };
}

/** Numbers this process's unix socket binds, for unique temporary names. */
let unixBinds = 0;

/**
 * Makes way for a unix socket at `file`: nothing there is fine, a stale
 * socket (connection refused) is removed; anything else throws, since a
 * regular file must not be lost and a live socket belongs to another server.
 */
async function claimSocketPath(file: string): Promise<void> {
  const stat = await fsp.lstat(file).catch((error) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (!stat) return;
  if (!stat.isSocket()) throw new Error("not a socket");
  const inUse = await new Promise<boolean>((resolve, reject) => {
    const sock = net.connect({ path: file });
    const done = (result: boolean | Error) => {
      clearTimeout(timer);
      sock.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    // No answer in time: something holds it that we must not take over.
    const timer = setTimeout(() => done(true), UNIX_PROBE_MS);
    sock.once("connect", () => done(true));
    sock.once("error", (error: NodeJS.ErrnoException) => {
      const stale = error.code === "ECONNREFUSED" || error.code === "ENOENT";
      done(stale ? false : error.code === "EAGAIN" ? true : error);
    });
  });
  if (inUse) throw Object.assign(new Error(`${file} is in use`), { code: "EADDRINUSE" });
  await fsp.rm(file, { force: true });
}

/**
 * Puts the socket bound at `temp` at `file` with link(), which fails if
 * something appeared there since {@link claimSocketPath}, and removes the
 * socket when the server closes or the process exits only while the path
 * still holds this very socket. Node unlinks the path it bound on close,
 * which is why the server binds `temp` and not `file`.
 */
async function bindUnix(server: net.Server, temp: string, file: string): Promise<void> {
  try {
    await fsp.link(temp, file);
  } catch (error) {
    server.close();
    throw (error as { code?: unknown }).code === "EEXIST"
      ? Object.assign(new Error(`${file} is in use`), { code: "EADDRINUSE" })
      : error;
  } finally {
    await fsp.rm(temp, { force: true });
  }
  const { dev, ino } = await fsp.lstat(file);
  const removeIfOurs = () => {
    try {
      const now = fs.lstatSync(file);
      if (now.dev === dev && now.ino === ino) fs.rmSync(file);
    } catch { /* gone already */ }
  };
  const onClose = () => {
    process.off("exit", removeIfOurs);
    removeIfOurs();
  };
  server.once("close", onClose);
  process.once("exit", removeIfOurs);
}

/**
 * `--syslog`: sends log messages over UDP (`host:port`) or to a local unix
 * socket such as `/dev/log` (see `adapters/output/syslog_unix.ts`). Sending never
 * throws and never blocks: a missing server drops messages and is retried.
 *
 * @module
 */
import dgram from "node:dgram";
import dns from "node:dns";
import os from "node:os";
import process from "node:process";
import { SYSLOG_MAX_QUEUED, SYSLOG_RETRY_MS } from "../../lib/limits.ts";
import { errorText } from "../../lib/errors.ts";
import type { Level } from "../../lib/log.ts";
import { formatSyslog, type SyslogAddress, type SyslogFormat } from "../../lib/output/syslog.ts";
import { settle, unixSyslog } from "./syslog_unix.ts";

/** Where syslog messages go. */
export interface SyslogSink {
  send(level: Level, message: string): void;
  /** Waits (at most about a second) for queued messages to leave, then closes. */
  close(): Promise<void>;
}

/** Options for {@link createSyslogSink}. */
export interface SyslogSinkOptions {
  readonly legacy: boolean;
  readonly facility: number;
  /** The process id in each message; default this process's. */
  readonly pid?: number;
  /** Told once per kind of failure (e.g. no `logger` command); never throws. */
  readonly onError?: (message: string) => void;
}

/**
 * A syslog sink for `address`, in upstream's formats.
 *
 * @example
 * ```ts
 * import { FACILITY_USER } from "../../lib/output/syslog.ts";
 * import { createSyslogSink } from "./syslog.ts";
 *
 * async function hello() {
 *   const sink = createSyslogSink({ kind: "udp", host: "127.0.0.1", port: 514 }, {
 *     legacy: false,
 *     facility: FACILITY_USER,
 *   });
 *   sink.send("info", "hello"); // <14>1 2026-11-21T10:37:36Z host websockify 1234 - - hello
 *   await sink.close();
 * }
 * ```
 */
export function createSyslogSink(address: SyslogAddress, options: SyslogSinkOptions): SyslogSink {
  const format = (stream: boolean): Omit<SyslogFormat, "now"> => ({
    legacy: options.legacy,
    facility: options.facility,
    hostname: os.hostname(),
    pid: options.pid ?? process.pid,
    stream,
  });
  const onError = options.onError ?? (() => {});
  if (address.kind === "unix") return unixSyslog(address.path, format(true), onError);
  return udpSyslog(address.host, address.port, format(false), onError);
}

/**
 * UDP, one datagram in flight at a time: Deno's `node:dgram` sends the
 * datagrams of one tick in reverse order (and a connected socket loses them
 * at exit), so the next send waits for the previous one's callback.
 */
function udpSyslog(
  host: string,
  port: number,
  format: Omit<SyslogFormat, "now">,
  onError: (message: string) => void,
): SyslogSink {
  let socket: dgram.Socket | undefined;
  let ip = "";
  let resolving = false;
  let busy = false;
  let retryAt = 0;
  let warned = false;
  const queue: Uint8Array[] = [];

  const pump = () => {
    if (busy || !socket || queue.length === 0) return;
    busy = true;
    socket.send(queue.shift()!, port, ip, () => {
      busy = false;
      pump();
    });
  };
  const resolve = () => {
    resolving = true;
    dns.lookup(host, (error, addr, family) => {
      resolving = false;
      if (error) {
        queue.length = 0;
        retryAt = Date.now() + SYSLOG_RETRY_MS;
        if (!warned) onError(`syslog: cannot resolve ${host}: ${errorText(error)}`);
        warned = true;
        return;
      }
      ip = addr;
      socket = dgram.createSocket(family === 6 ? "udp6" : "udp4");
      // Errors (e.g. ICMP unreachable on some stacks) never stop logging.
      socket.on("error", () => {});
      socket.unref?.();
      pump();
    });
  };

  return {
    send(level, message) {
      const bytes = formatSyslog(level, message, { ...format, now: new Date() });
      if (!bytes || (!socket && !resolving && Date.now() < retryAt)) return;
      if (queue.length < SYSLOG_MAX_QUEUED) queue.push(bytes);
      if (socket) pump();
      else if (!resolving) resolve();
    },
    async close() {
      await settle(() => !resolving && !busy && queue.length === 0);
      socket?.close();
      socket = undefined;
      retryAt = Infinity;
    },
  };
}

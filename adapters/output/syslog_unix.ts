/**
 * Syslog to a unix socket path (`--syslog /dev/log`).
 *
 * `/dev/log` is usually a DATAGRAM socket, and no `node:*` API sends unix
 * datagrams (`node:dgram` is UDP only; Deno's `unixpacket` needs
 * `--unstable-net`, Bun has nothing). So the path is first tried as a STREAM
 * socket with `node:net` (syslog-ng, rsyslog stream sockets): then the bytes
 * are exactly upstream's, ending in `\n`. If that connect fails (EPROTOTYPE
 * for a datagram socket; Bun reports ECONNREFUSED; ENOENT while syslogd is
 * not up yet), messages go through one long-lived `logger` (util-linux; on
 * Debian and Ubuntu it is in the Essential `bsdutils`), one message per
 * stdin line. `logger` tries DATAGRAM then STREAM like upstream, and
 * reconnects after a failed send or a missing socket. Its header is its own:
 * RFC 5424 with microseconds and `+00:00`, or RFC 3164 with a timestamp and
 * hostname; the PRI, app name `websockify`, our PID and the message bytes
 * (BOM included) are ours.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import process from "node:process";
import {
  SYSLOG_FLUSH_MS,
  SYSLOG_MAX_BUFFERED,
  SYSLOG_MAX_QUEUED,
  SYSLOG_NO_LOGGER_MS,
  SYSLOG_RESPAWN_MS,
} from "../../lib/limits.ts";
import { errorText } from "../../lib/errors.ts";
import type { Level } from "../../lib/log.ts";
import { formatSyslog, syslogBody, type SyslogFormat, syslogPri } from "../../lib/output/syslog.ts";
import type { SyslogSink } from "./syslog.ts";

/**
 * Resolves once `done()` is true, or after `ms`, polling every 10 ms.
 *
 * @example
 * ```ts
 * import { settle } from "./syslog_unix.ts";
 *
 * const queue = ["a line still to send"];
 * setTimeout(() => queue.shift(), 10);
 * await settle(() => queue.length === 0, 1000);
 * ```
 */
export async function settle(done: () => boolean, ms = SYSLOG_FLUSH_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

/**
 * The `logger` command line for `path` (the first item is the program).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loggerCommand } from "./syslog_unix.ts";
 *
 * const [command, ...args] = loggerCommand("/dev/log", false, 1234);
 * assert.equal(command, "logger");
 * assert.deepEqual(args.slice(0, 5), [
 *   "--socket",
 *   "/dev/log",
 *   "--socket-errors=off",
 *   "--prio-prefix",
 *   "--rfc5424=notq",
 * ]);
 * ```
 */
export function loggerCommand(path: string, legacy: boolean, pid: number): string[] {
  return [
    "logger",
    "--socket",
    path,
    "--socket-errors=off",
    "--prio-prefix",
    legacy ? "--rfc3164" : "--rfc5424=notq",
    "--tag",
    "websockify",
    `--id=${pid}`,
    "--size",
    "65536",
  ];
}

/**
 * One stdin line for `logger --prio-prefix`: `<PRI>` and the message body.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FACILITY_USER } from "../../lib/output/syslog.ts";
 * import { loggerLine } from "./syslog_unix.ts";
 *
 * const line = loggerLine("info", "a\nb", FACILITY_USER);
 * assert.deepEqual(line, new TextEncoder().encode("<14>a b\n"));
 * ```
 */
export function loggerLine(level: Level, message: string, facility: number): Uint8Array {
  const pri = new TextEncoder().encode(`<${syslogPri(level, facility)}>`);
  const body = syslogBody(message);
  const line = new Uint8Array(pri.length + body.length + 1);
  line.set(pri);
  line.set(body, pri.length);
  line[line.length - 1] = 0x0a;
  return line;
}

/** Why `path` is not a socket to send to, or undefined if it is one. */
function socketProblem(path: string): string | undefined {
  try {
    return fs.statSync(path).isSocket() ? undefined : "is not a socket";
  } catch (error) {
    const code = (error as { code?: string }).code;
    return code === "ENOENT" ? "does not exist" : `cannot be used (${code})`;
  }
}

/**
 * A sink for the unix socket `path`; `format.stream` must be true.
 *
 * @example
 * ```ts
 * import os from "node:os";
 * import process from "node:process";
 * import { unixSyslog } from "./syslog_unix.ts";
 *
 * function hello() {
 *   const format = { legacy: false, facility: 1, hostname: os.hostname(), pid: process.pid };
 *   const sink = unixSyslog("/dev/log", { ...format, stream: true }, console.warn);
 *   sink.send("info", "hello");
 *   return sink.close();
 * }
 * ```
 */
export function unixSyslog(
  path: string,
  format: Omit<SyslogFormat, "now">,
  onError: (message: string) => void,
): SyslogSink {
  let mode: "idle" | "probing" | "stream" | "logger" | "closed" = "idle";
  let stream: net.Socket | undefined;
  let child: ChildProcess | undefined;
  let queue: [Level, string][] = [];
  let retryAt = 0;
  let warned = false;
  let told = false;

  const write = (level: Level, message: string) => {
    if (mode === "stream") {
      const bytes = formatSyslog(level, message, { ...format, now: new Date() });
      if (bytes && stream!.writableLength < SYSLOG_MAX_BUFFERED) stream!.write(bytes);
    } else if (mode === "logger" && message !== "") {
      const stdin = child!.stdin!;
      if (stdin.writableLength < SYSLOG_MAX_BUFFERED) {
        stdin.write(loggerLine(level, message, format.facility));
      }
    }
  };
  const drain = () => {
    for (const [level, message] of queue) write(level, message);
    queue = [];
  };

  const startLogger = () => {
    const [cmd, ...args] = loggerCommand(path, format.legacy, format.pid);
    // Own process group: a terminal's Ctrl-C must not kill it before our last lines.
    // It exits on EOF, when we close stdin or die.
    const proc = spawn(cmd!, args, {
      stdio: ["pipe", "ignore", "ignore"],
      detached: true,
      // RFC 5424 times in UTC, as upstream's; RFC 3164 times are local by definition.
      env: format.legacy ? process.env : { ...process.env, TZ: "UTC" },
    });
    child = proc;
    mode = "logger";
    proc.stdin!.on("error", () => {});
    proc.unref();
    proc.once("error", (error) => {
      if (!warned) onError(`syslog: cannot run logger(1) for ${path}: ${errorText(error)}`);
      warned = true;
      lost(proc, SYSLOG_NO_LOGGER_MS);
    });
    proc.once("exit", () => lost(proc, SYSLOG_RESPAWN_MS));
    drain();
  };
  const lost = (proc: ChildProcess, wait: number) => {
    if (child !== proc || mode === "closed") return;
    child = undefined;
    mode = "idle";
    retryAt = Date.now() + wait;
  };

  const probe = () => {
    mode = "probing";
    const sock = net.connect({ path });
    sock.once("connect", () => {
      if (mode !== "probing") return void sock.destroy();
      stream = sock;
      mode = "stream";
      sock.resume(); // to see the server's end
      sock.unref?.();
      drain();
    });
    sock.on("error", () => {
      if (mode !== "probing") return;
      // logger(1) drops lines quietly while the socket is missing: say so once.
      const problem = socketProblem(path);
      if (problem && !told) {
        onError(`syslog: ${path} ${problem}; lines are lost until it is a socket`);
      }
      told ||= problem !== undefined;
      startLogger();
    });
    sock.once("close", () => {
      if (stream !== sock) return;
      stream = undefined;
      if (mode === "stream") mode = "idle";
    });
  };

  return {
    send(level, message) {
      if (mode === "stream" || mode === "logger") return write(level, message);
      if (mode === "closed" || (mode === "idle" && Date.now() < retryAt)) return;
      if (queue.length < SYSLOG_MAX_QUEUED) queue.push([level, message]);
      if (mode === "idle") probe();
    },
    async close() {
      await settle(() => mode !== "probing");
      const out = stream ?? child?.stdin ?? undefined;
      mode = "closed";
      if (!out) return;
      let done = false;
      out.end(() => (done = true));
      await settle(() => done);
      stream?.destroy();
    },
  };
}

/**
 * Wrap mode: runs `PROGRAM ARGS` with `rebind.so` preloaded, so that its
 * bind() to the proxy's port lands on a free loopback port that the proxy
 * forwards to, and applies `--wrap-mode` when it exits:
 *
 * - `exit` (default): the proxy exits with the program's status (upstream
 *   exits 0 whatever the status);
 * - `ignore`: the proxy keeps serving (for programs that daemonize);
 * - `respawn`: the program is restarted, throttled as upstream
 *   (`respawnDelay()` in `lib/process/wrap.ts`).
 *
 * `stop()` sends SIGTERM to the program's process group, SIGKILL after a
 * grace period, and waits until it is reaped.
 *
 * @module
 */
import fs from "node:fs";
import net from "node:net";
import process from "node:process";
import {
  EPHEMERAL_LOW_DEFAULT,
  RESPAWN_HISTORY,
  WRAP_GRACE_MS,
  WRAP_KILL_WAIT_MS,
  WRAP_PORT_MIN,
  WRAP_PORT_TRIES,
} from "../../lib/limits.ts";
import type { WrapMode } from "../../lib/cli/args.ts";
import { describeError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { Conn, Target } from "../../lib/types.ts";
import {
  commandText,
  respawnDelay,
  WRAP_HOSTS,
  WRAP_LOG,
  wrapEnv,
} from "../../lib/process/wrap.ts";
import type { WebsockifyOptions } from "../websockify.ts";
import { defaultConnect } from "../connect/connect.ts";
import { rebindLibrary } from "./rebind.ts";
import { type Program, spawnProgram } from "./spawn.ts";

/** Options for {@link prepareWrap}. */
export interface WrapOptions {
  readonly command: readonly string[];
  readonly mode: WrapMode;
  readonly log: Logger;
  /** The program's environment before the rebind variables; default `process.env`. */
  readonly env?: Record<string, string | undefined>;
  /**
   * How long the program may take to stop after SIGTERM; default 3000 ms
   * (under the CLI's 5 s limit for stopping).
   */
  readonly graceMs?: number;
}

/** A prepared wrapped program. */
export interface Wrap {
  /** Where the proxy forwards: `127.0.0.1` and the program's new port. */
  readonly target: Target;
  /** For the banner: `'cmd args' (port N)`. */
  readonly description: string;
  /** `settings` with {@link Wrap.target} and a connect that falls back to `::1`. */
  proxyOptions(settings: WebsockifyOptions): WebsockifyOptions;
  /** Starts the program; `oldPort` is the port the proxy listens on. */
  start(oldPort: number): void;
  /** Settles with the program's status when it exits in mode `exit`. */
  readonly ended: Promise<number>;
  /** Stops the program (and any pending respawn) and waits until it is gone. */
  stop(): Promise<void>;
}

/** Where Linux keeps its ephemeral port range, "LOW HIGH". */
const EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range";

/** `port` if free on loopback in both families (dual-stack `::` when available); 0: any. */
async function freePort(port = 0): Promise<number> {
  let last: unknown;
  for (const host of ["::", "127.0.0.1"]) {
    try {
      return await new Promise<number>((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(port, host, () => {
          const { port } = server.address() as net.AddressInfo;
          server.close(() => resolve(port));
        });
      });
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

/** The first port of the kernel's ephemeral range (Linux), else the IANA default. */
function ephemeralLow(): number {
  try {
    const low = Number(fs.readFileSync(EPHEMERAL_RANGE_FILE, "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : EPHEMERAL_LOW_DEFAULT;
  } catch {
    return EPHEMERAL_LOW_DEFAULT;
  }
}

/**
 * The wrapped program's port. It is free when picked, but the program binds
 * it a moment later, and meanwhile any outgoing connection on the machine may
 * take it if it is ephemeral; so it is picked below the ephemeral range,
 * where the kernel hands out none (random tries, then any free port).
 */
async function programPort(): Promise<number> {
  const low = ephemeralLow();
  for (let i = 0; i < WRAP_PORT_TRIES && low > WRAP_PORT_MIN; i++) {
    const port = WRAP_PORT_MIN + Math.floor(Math.random() * (low - WRAP_PORT_MIN));
    try {
      return await freePort(port);
    } catch {
      // Taken: try another.
    }
  }
  return freePort();
}

/** Tries 127.0.0.1, then ::1, where an IPv6-only program ends up (see `rebind.c`). */
function withFallback(connect: (target: Target) => Promise<Conn>) {
  return async (target: Target): Promise<Conn> => {
    if (target.kind !== "tcp" || target.hostname !== WRAP_HOSTS[0]) return connect(target);
    try {
      return await connect(target);
    } catch (error) {
      return connect({ ...target, hostname: WRAP_HOSTS[1]! }).catch(() => Promise.reject(error));
    }
  };
}

/** Resolves after `ms` with false, or with true once `promise` settles. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  return Promise.race([promise.then(() => true), timeout]).finally(() => clearTimeout(timer));
}

/** The log line for a program that could not be started. */
function startError(text: string, error: Error): string {
  const code = (error as { code?: string }).code;
  return `Cannot start '${text}': ${
    code === "ENOENT" ? "command not found" : describeError(error)
  }`;
}

/**
 * Builds `rebind.so` if needed and picks the program's port; the program
 * starts with {@link Wrap.start}, once the proxy listens. Throws a
 * `ConfigError` with one line when `rebind.so` cannot be had.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { SILENT_LOGGER } from "../../lib/log.ts";
 * import { websockify } from "../websockify.ts";
 * import { prepareWrap } from "./wrap.ts";
 *
 * async function run() {
 *   const command = ["vncserver", ":1"];
 *   const wrap = await prepareWrap({ command, mode: "exit", log: SILENT_LOGGER });
 *   const server = await websockify(wrap.proxyOptions({ listen: { port: 5901 } }));
 *   wrap.start(server.addr.port);
 *   wrap.ended.then(async (status) => {
 *     await server.close();
 *     process.exit(status);
 *   });
 * }
 * ```
 */
export async function prepareWrap(options: WrapOptions): Promise<Wrap> {
  const { command, mode, log, graceMs = WRAP_GRACE_MS } = options;
  const so = await rebindLibrary(options.env);
  const port = await programPort();
  const text = commandText(command);
  const target: Target = { kind: "tcp", hostname: WRAP_HOSTS[0]!, port };
  let resolveEnded: (status: number) => void = () => {};
  const ended = new Promise<number>((r) => (resolveEnded = r));
  const starts: number[] = [];
  let program: Program | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopping = false;
  let stopped: Promise<void> | undefined;
  // A last resort if the proxy exits some other way: never leave the program behind.
  const onExit = () => program?.signal("SIGTERM");

  /** SIGTERM, then SIGKILL after the grace period; waits until reaped. */
  const terminate = async (current: Program | undefined) => {
    if (!current?.running) return;
    current.signal("SIGTERM");
    if (await settlesWithin(current.exited, graceMs)) return;
    log.warn(`'${text}' did not stop within ${graceMs} ms of SIGTERM; sending SIGKILL`);
    current.signal("SIGKILL");
    await settlesWithin(current.exited, WRAP_KILL_WAIT_MS);
  };

  const run = (oldPort: number) => {
    timer = undefined;
    if (stopping) return;
    starts.push(Date.now());
    starts.splice(0, starts.length - RESPAWN_HISTORY);
    log.info(WRAP_LOG.starting(command));
    const env = wrapEnv(options.env ?? process.env, so, oldPort, port);
    const current = program = spawnProgram(command, env);
    current.exited.then(({ status, error }) => {
      if (stopping) return;
      if (error) log.error(startError(text, error));
      log.info(WRAP_LOG.exited(status));
      if (mode === "exit") resolveEnded(status);
      if (mode !== "respawn") return;
      const delay = respawnDelay(starts, Date.now());
      if (delay > 0) log.warn(WRAP_LOG.tooFast);
      timer = setTimeout(() => run(oldPort), delay);
    });
  };

  return {
    target,
    description: WRAP_LOG.target(command, port),
    proxyOptions(settings) {
      const connect = settings.connect ?? defaultConnect({ ca: settings.targetCa });
      return { ...settings, target, connect: withFallback(connect) };
    },
    start(oldPort) {
      process.on("exit", onExit);
      run(oldPort);
    },
    ended,
    stop() {
      stopping = true;
      clearTimeout(timer);
      stopped ??= terminate(program).finally(() => process.off("exit", onExit));
      return stopped;
    },
  };
}

/**
 * A throwaway `redis-server` for the TokenRedis tests: loopback only, a free
 * port, no persistence, stopped and started again on the same port. Commands
 * go through `redis-cli`, independent of the client under test. Signals go
 * through process.kill: Deno's `child.kill()` delivers only the first one.
 *
 * @module
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import process from "node:process";
import { freePort, within } from "./_harness.ts";
import { needs, type SkipIf } from "./_skip.ts";

/** Why the Redis suites skip, or false when `redis-server` is installed. */
export const REDIS_SKIP: SkipIf = needs(
  "redis-server and redis-cli",
  spawnSync("redis-server", ["--version"]).status === 0 &&
    spawnSync("redis-cli", ["--version"]).status === 0,
  "apt-get install redis-server",
);

/** A `redis-server` child. */
export interface RedisServer {
  readonly port: number;
  /** Starts it (again, on the same port); resolves once it accepts connections. */
  start(): Promise<void>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** SIGSTOP or SIGCONT: a hung server keeps its connections but answers nothing. */
  signal(signal: "SIGSTOP" | "SIGCONT"): void;
  /** Runs `redis-cli` with the server's password and returns its output, trimmed. */
  cli(...args: string[]): Promise<string>;
  /** How many client connections are named `name` (`CLIENT LIST`). */
  connections(name: string): Promise<number>;
}

/** Starts `redis-server` with extra `args` (`--requirepass` needs `password`). */
export async function startRedis(args: string[] = [], password?: string): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    port,
    async start() {
      const proc = spawn("redis-server", [
        ...["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        ...args,
      ], { stdio: ["ignore", "pipe", "pipe"] });
      child = proc;
      let out = "";
      await within(
        10000,
        new Promise<void>((resolve, reject) => {
          proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
            out += d;
            if (out.includes("Ready to accept connections")) resolve();
          });
          proc.once("exit", () => reject(new Error(`redis-server exited: ${out}`)));
        }),
        "redis-server start",
      );
    },
    async stop() {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      process.kill(proc.pid!, "SIGCONT"); // a stopped process would not act on SIGTERM
      process.kill(proc.pid!, "SIGTERM");
      await within(10000, exited, "redis-server stop").catch(() =>
        process.kill(proc.pid!, "SIGKILL")
      );
    },
    signal(signal) {
      if (child?.pid) process.kill(child.pid, signal);
    },
    cli(...command) {
      const auth = password === undefined ? [] : ["--no-auth-warning", "-a", password];
      const argv = ["-h", "127.0.0.1", "-p", String(port), ...auth, ...command];
      return new Promise((resolve, reject) => {
        execFile("redis-cli", argv, { timeout: 5000 }, (error, stdout) => {
          if (error) reject(error);
          else resolve(String(stdout).trim());
        });
      });
    },
    async connections(name) {
      const list = await server.cli("CLIENT", "LIST");
      return list.split("\n").filter((line) => line.includes(` name=${name} `)).length;
    },
  };
  await server.start();
  return server;
}

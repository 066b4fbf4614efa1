/**
 * The benchmark: `node --import tsx bench/run.ts [--runtime deno,bun,node]
 * [--mib 512] [--conns 5000[,9800]] [--reps 3] [--no-pin] [--quick]`.
 *
 * This process is the client for everything. It starts one TCP target
 * (`_target.ts`), then for each proxy (`cli.ts` under Deno, Bun and Node, a
 * bare TCP relay, and the peers found on this machine: upstream's Python
 * `websockify` and lighttpd's `mod_wstunnel`) runs every measurement twice,
 * straight to the target over TCP and through the proxy, and prints both with
 * their ratio. By default the proxy runs alone on one CPU (`taskset`). It exits
 * non-zero only when something failed; the peers' failures are listed apart.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import type { Endpoint } from "./_client.ts";
import {
  buildDist,
  fdLimit,
  killAll,
  onPath,
  PEERS,
  proxyCommand,
  type ServerName,
  startProxy,
  startTarget,
  steadyHarness,
} from "./_proc.ts";
import { type Row, serverTable, summaryTable } from "./_report.ts";
import { environment } from "./_env.ts";
import { type Config, measure, type Server } from "./_suite.ts";

const USAGE = "Usage: node --import tsx bench/run.ts [--runtime deno,bun,node] [--mib 512] " +
  "[--conns 5000[,9800]] [--reps 3] [--no-pin] [--quick]";

/**
 * Upstream 0.10 waits with select(), which fails for descriptors above 1023
 * ("filedescriptor out of range in select()"): it broke at ~510 concurrent
 * connections here.
 */
const PYTHON_MAX_CONNS = 400;

const PEER_TITLE: Record<string, string> = {
  python: "Python `websockify`",
  lighttpd: "lighttpd with `mod_wstunnel`",
};

const LIGHTTPD_NOTE = "lighttpd runs `mod_wstunnel` in one process with binary frames and no" +
  " access log (config in bench/README.md).\n";

function parseOptions(
  argv: string[],
): { runtimes: ServerName[]; config: Config; pin: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      runtime: { type: "string", default: "deno,bun,node" },
      mib: { type: "string" },
      conns: { type: "string" },
      reps: { type: "string" },
      quick: { type: "boolean", default: false },
      "no-pin": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const runtimes = values.runtime.split(",").map((r) => r.trim()).filter(Boolean);
  for (const r of runtimes) {
    if (!["deno", "bun", "node"].includes(r)) throw new Error(`Unknown runtime: "${r}"`);
  }
  const positive = (name: string, text: string | undefined, fallback: number, max: number) => {
    const n = text === undefined ? fallback : Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new Error(`Invalid --${name}: "${text}" (an integer from 1 to ${max})`);
    }
    return n;
  };
  const quick = values.quick;
  const conns = (values.conns ?? (quick ? "20" : "5000")).split(",")
    .map((n) => positive("conns", n.trim(), 0, 10000));
  const config: Config = {
    mib: positive("mib", values.mib, quick ? 4 : 512, 16384),
    conns,
    reps: positive("reps", values.reps, quick ? 1 : 3, 20),
    rounds: quick ? 200 : 3000,
    warmupRounds: quick ? 20 : 300,
    warmRounds: quick ? 500 : 20_000,
    coldRounds: quick ? 500 : 2000,
    warmupHandshakes: quick ? 10 : 50,
    sequential: quick ? 20 : 500,
    parallel: quick ? 64 : 1500,
    phaseMs: quick ? 3000 : 10_000,
    warmupMib: quick ? 1 : 16,
  };
  return { runtimes: runtimes as ServerName[], config, pin: !values["no-pin"] };
}

/** Re-runs this script with a higher open-files limit when `need` exceeds it. */
function ensureFdLimit(need: number): void {
  if (fdLimit() >= need || process.env.WEBSOCKIFY_BENCH_FDS) return;
  const script = `ulimit -Sn ${need} 2>/dev/null || ulimit -n ${need} 2>/dev/null ||` +
    ` { echo "bench: cannot raise the open-files` +
    ` limit to ${need} (ulimit -Hn is $(ulimit -Hn)); use fewer --conns" >&2; exit 2; }; exec "$@"`;
  const args = [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  const result = spawnSync("sh", ["-c", script, "sh", ...args], {
    stdio: "inherit",
    env: { ...process.env, WEBSOCKIFY_BENCH_FDS: String(need) },
  });
  process.exit(result.status ?? 1);
}

const PYTHON_NOTE = (conns: number) =>
  `Python forks a process per connection: its memory and CPU rows are sums over the process` +
  ` tree, and it held at most ${conns} connections (it fails beyond ~500: select()).\n`;

async function main(): Promise<number> {
  let options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  const { runtimes, config } = options;
  const pinning = steadyHarness(options.pin);
  const most = Math.max(...config.conns);
  ensureFdLimit(most + 1024);
  if (runtimes.includes("node")) buildDist();
  const fds = Math.max(65536, 2 * most + 1024);
  // The bare TCP relay is the floor any proxy stands on: a second process and hop.
  const servers: ServerName[] = [...runtimes, "relay"];
  const skipped: string[] = [];
  for (const peer of PEERS) {
    if (onPath(proxyCommand(peer)[0]!)) servers.push(peer);
    else skipped.push(`- ${PEER_TITLE[peer]} is not installed (\`${peer}\` not found): skipped.`);
  }
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "websockify-bench-"));
  const errors: string[] = [];
  const reference: string[] = [];
  const results = new Map<string, Row[]>();
  console.log(`## websockify benchmark, ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(environment(config, servers));
  console.log(`- Pinning: ${pinning.note}`);
  if (skipped.length > 0) console.log(skipped.join("\n"));
  const target = await startTarget(fds);
  const raw: Endpoint = { kind: "tcp", port: target.port };
  for (const name of servers) {
    const began = performance.now();
    // The peers' own failures are reported, but are not errors of this project.
    const problems = PEERS.includes(name) ? reference : errors;
    let starts = 0;
    const server: Server = {
      kind: name === "relay" ? "tcp" : "ws",
      tree: name === "python",
      maxConns: name === "python" ? PYTHON_MAX_CONNS : Infinity,
      start: () => startProxy(name, target.port, path.join(logDir, `${name}.${++starts}.log`), fds),
    };
    const failures: string[] = [];
    const rows = await measure(server, raw, config, failures);
    problems.push(...failures.map((f) => `${name}: ${f} (logs: ${logDir}/${name}.*)`));
    results.set(name, rows);
    const seconds = ((performance.now() - began) / 1000).toFixed(0);
    console.log(`\n${serverTable(`${name} (${seconds} s)`, rows)}`);
    if (name === "python") console.log(PYTHON_NOTE(PYTHON_MAX_CONNS));
    if (name === "lighttpd") console.log(LIGHTTPD_NOTE);
  }
  await target.stop();
  if (results.size > 1) console.log(`\n${summaryTable(results)}`);
  const list = (lines: string[]) => lines.map((line) => `- ${line}`).join("\n");
  if (reference.length > 0) {
    console.log(`\n### Peer failures (not counted as errors)\n\n${list(reference)}`);
  }
  if (errors.length > 0) console.log(`\n### Errors\n\n${list(errors)}`);
  if (errors.length > 0 || reference.length > 0) {
    console.log(`\nProxy logs kept in ${logDir}`);
    return errors.length > 0 ? 1 : 0;
  }
  fs.rmSync(logDir, { recursive: true, force: true });
  return 0;
}

process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => process.exit(130));
}
main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`bench: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
    process.exit(2);
  },
);

/**
 * Every measurement against one proxy, as table rows. Each group of
 * measurements (open connections, warm echo, echo right after start,
 * handshakes, throughput) runs on a proxy process of its own, started fresh,
 * so that what one group leaves behind (heap growth, compiled code) does not
 * change the next. Within a group, runs straight to the target (raw) and
 * through the proxy alternate `reps` times so that drift in machine load hits
 * both sides alike; cells are medians.
 *
 * @module
 */
import type { Endpoint } from "./_client.ts";
import { download, handshakes, holdMany, latency, upload } from "./_measure.ts";
import {
  cpuSeconds,
  descendants,
  fdLimit,
  memKiB,
  peakKiB,
  type Proc,
  resetPeak,
} from "./_proc.ts";
import { median, type Row } from "./_report.ts";

/** Sizes of one run. */
export interface Config {
  mib: number;
  /** Open-connection counts, one memory measurement each. */
  conns: number[];
  reps: number;
  /** Echo round trips measured per run, each run after `warmupRounds` of its own. */
  rounds: number;
  warmupRounds: number;
  /** Round trips on a fresh proxy before the warm echo runs. */
  warmRounds: number;
  /** Round trips measured right after a proxy starts. */
  coldRounds: number;
  /** Handshakes (4 at a time) that warm up both sides before handshakes and connections. */
  warmupHandshakes: number;
  sequential: number;
  parallel: number;
  /** Upper bound on each latency and handshake phase. */
  phaseMs: number;
  warmupMib: number;
}

/** A proxy under test: how to start a fresh one and how to talk to it. */
export interface Server {
  start(): Promise<Proc & { port: number }>;
  kind: Endpoint["kind"];
  /** Forks per connection: memory and CPU are summed over the process tree. */
  tree: boolean;
  /** The most open connections it can hold (fewer are measured). */
  maxConns: number;
}

/** The two sides of a measurement: results, or the error text. */
interface Both<T> {
  raw: T[] | string;
  proxy: T[] | string;
}

type Side = "raw" | "proxy";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The median of `pick` over one side, or "ERROR". */
function cell<T>(side: T[] | string, pick: (t: T) => number): number | string {
  return typeof side === "string" ? "ERROR" : median(side.map(pick));
}

/** Samples `read` every 50 ms; the returned function stops and gives the maximum. */
function sampleMax(read: () => number): () => number {
  let max = read();
  const timer = setInterval(() => (max = Math.max(max, read())), 50);
  return () => {
    clearInterval(timer);
    return Math.max(max, read());
  };
}

/** Waits (up to 5 s) until `pid` has no child processes left, so their CPU time is counted. */
async function childrenGone(pid: number): Promise<void> {
  const end = Date.now() + 5000;
  while (descendants(pid).length > 0 && Date.now() < end) await sleep(50);
}

/** A row before it is measured: its name, and whether it shows proxy/raw. */
interface RowName {
  name: string;
  ratio?: boolean;
}

/** The rows of each group, also used for its ERROR rows when it fails as a whole. */
export function rowNames(config: Config, maxConns: number): RowName[][] {
  const { mib } = config;
  const both = (name: string): RowName => ({ name, ratio: true });
  const conns = config.conns.map((n) => {
    const held = Math.min(n, maxConns);
    return [
      both(`${held} conns: open + echo all, ms`),
      { name: `proxy RSS idle, MiB` },
      { name: `proxy RSS with ${held} open, MiB` },
      { name: `proxy KiB per open connection (${held} open)` },
    ];
  });
  return [
    ...conns,
    [
      both(`echo p50, warm (after ${config.warmRounds} round trips), µs`),
      both(`echo p99, warm, µs`),
    ],
    [
      both(`echo p50, first ${config.coldRounds} round trips after start, µs`),
      both(`echo p99, first ${config.coldRounds} round trips after start, µs`),
    ],
    [
      both("handshakes sequential, conn/s"),
      { name: "proxy CPU per connect+echo+close, sequential, ms" },
      both("handshakes 16-way, conn/s"),
      { name: "proxy CPU per connect+echo+close, 16-way, ms" },
    ],
    [
      both(`up ${mib} MiB, MiB/s`),
      { name: `proxy peak RSS during up, MiB` },
      both(`down ${mib} MiB, MiB/s`),
      { name: `proxy peak RSS during down, MiB` },
    ],
  ];
}

/**
 * Runs a proxy's measurements; failures become "ERROR" cells and `errors`
 * lines. Every proxy started here is stopped before this returns.
 */
export async function measure(
  server: Server,
  raw: Endpoint,
  config: Config,
  errors: string[],
): Promise<Row[]> {
  const { phaseMs, reps } = config;
  const mem = (pid: number) => memKiB(pid, server.tree);
  const both = async <T>(name: string, times: number, fn: (side: Side) => Promise<T>) => {
    const out: Both<T> = { raw: [], proxy: [] };
    for (let i = 0; i < times; i++) {
      for (const side of ["raw", "proxy"] as const) {
        const results = out[side];
        if (typeof results === "string") continue;
        try {
          results.push(await fn(side));
        } catch (error) {
          errors.push(`${name} (${side}): ${String(error)}`);
          out[side] = "ERROR";
        }
      }
    }
    return out;
  };
  /** Runs `fn` on a freshly started proxy, then stops it. */
  const fresh = async <T>(fn: (proxy: Proc, via: Endpoint) => Promise<T>): Promise<T> => {
    const proxy = await server.start();
    try {
      return await fn(proxy, { kind: server.kind, port: proxy.port });
    } finally {
      if (!proxy.alive()) errors.push("the proxy exited during the run");
      await proxy.stop();
    }
  };
  const pick = (via: Endpoint) => (side: Side) => side === "raw" ? raw : via;
  const warmHandshakes = async (via: Endpoint) => {
    for (const ep of [raw, via]) await handshakes(ep, config.warmupHandshakes, 4, phaseMs);
  };
  const rows: Row[] = [];
  const names = rowNames(config, server.maxConns);
  /** Adds a group's rows; if it fails as a whole, ERROR rows under the same names. */
  const group = async (index: number, fn: (names: string[]) => Promise<Row[]>) => {
    const own = names[index]!;
    try {
      rows.push(...await fn(own.map((row) => row.name)));
    } catch (error) {
      errors.push(`${own[0]!.name}: ${String(error)}`);
      rows.push(...own.map((row) => ({ ...row, proxy: "ERROR" })));
    }
  };

  let index = 0;
  for (const wanted of config.conns) {
    const n = Math.min(wanted, server.maxConns);
    await group(index++, (own) =>
      fresh(async (proxy, via) => {
        // Each session holds two sockets; without room for them the run fails below.
        const limit = fdLimit(proxy.pid);
        if (limit < 2 * n + 64) {
          errors.push(
            `its open-files limit is ${limit}, too low for ${n} connections;` +
              ` use --conns ${Math.floor((limit - 64) / 2)} or raise ulimit -Hn`,
          );
        }
        await warmHandshakes(via);
        await sleep(500);
        const idle = mem(proxy.pid);
        const held = await both(`${n} conns`, 1, (side) =>
          holdMany(pick(via)(side), n, 60_000 + n * 10, async () => {
            await sleep(300);
            return mem(proxy.pid);
          }));
        const open = cell(held.proxy, (h) =>
          h.during);
        return [
          {
            name: own[0]!,
            raw: cell(held.raw, (h) =>
              h.ms),
            proxy: cell(held.proxy, (h) =>
              h.ms),
            ratio: true,
          },
          { name: own[1]!, proxy: idle / 1024 },
          { name: own[2]!, proxy: typeof open === "number" ? open / 1024 : open },
          { name: own[3]!, proxy: typeof open === "number" ? (open - idle) / n : open },
        ];
      }));
  }

  const echoRows = (own: string[], lat: Both<{ p50: number; p99: number }>): Row[] =>
    (["p50", "p99"] as const).map((q, i) => ({
      name: own[i]!,
      raw: cell(lat.raw, (l) => l[q]),
      proxy: cell(lat.proxy, (l) => l[q]),
      ratio: true,
    }));
  await group(index++, (own) =>
    fresh(async (_proxy, via) => {
      // Round trips measured and dropped: a warm-up cut short by the deadline still counts.
      await latency(via, config.warmRounds, 0, 10 * phaseMs);
      const lat = await both("warm echo", reps, (side) =>
        latency(pick(via)(side), config.rounds, config.warmupRounds, phaseMs));
      return echoRows(own, lat);
    }));
  await group(index++, async (own) => {
    // Nothing before: the first connection to a proxy that has just started.
    const lat = await both(
      "echo after start",
      reps,
      (side) =>
        side === "raw"
          ? latency(raw, config.coldRounds, 0, phaseMs)
          : fresh((_proxy, via) => latency(via, config.coldRounds, 0, phaseMs)),
    );
    return echoRows(own, lat);
  });

  await group(index++, (own) =>
    fresh(async (proxy, via) => {
      await warmHandshakes(via);
      const out: Row[] = [];
      for (const [i, parallel] of [1, 16].entries()) {
        const count = parallel === 1 ? config.sequential : config.parallel;
        let cpu = 0;
        let done = 0;
        const rate = await both(own[2 * i]!, reps, async (side) => {
          if (side === "raw") return (await handshakes(raw, count, parallel, phaseMs)).perSecond;
          const before = cpuSeconds(proxy.pid, server.tree);
          const result = await handshakes(via, count, parallel, phaseMs);
          // The client saw each close complete; let the proxy finish its side too.
          await sleep(200);
          if (server.tree) await childrenGone(proxy.pid);
          cpu += cpuSeconds(proxy.pid, server.tree) - before;
          done += result.count;
          return result.perSecond;
        });
        out.push({
          name: own[2 * i]!,
          raw: cell(rate.raw, (n) => n),
          proxy: cell(rate.proxy, (n) => n),
          ratio: true,
        }, {
          name: own[2 * i + 1]!,
          proxy: typeof rate.proxy === "string" ? "ERROR" : (1000 * cpu) / done,
        });
      }
      return out;
    }));

  await group(index++, (own) =>
    fresh(async (proxy, via) => {
      const warm = config.warmupMib * 1048576;
      for (const ep of [raw, via]) {
        await upload(ep, warm);
        await download(ep, warm);
      }
      const bytes = config.mib * 1048576;
      const out: Row[] = [];
      for (const [i, fn] of [upload, download].entries()) {
        // VmHWM is exact for one process; children and kernels without clear_refs need sampling.
        const peak = !server.tree && resetPeak(proxy.pid)
          ? () => peakKiB(proxy.pid)
          : sampleMax(() => mem(proxy.pid));
        const speed = await both(own[2 * i]!, reps, (side) => fn(pick(via)(side), bytes));
        out.push({
          name: own[2 * i]!,
          raw: cell(speed.raw, (n) => n),
          proxy: cell(speed.proxy, (n) => n),
          ratio: true,
        }, { name: own[2 * i + 1]!, proxy: peak() / 1024 });
      }
      return out;
    }));
  return rows;
}

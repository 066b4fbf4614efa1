/**
 * Every measurement against one proxy, as table rows. Each one runs straight
 * to the target (raw) and through the proxy, alternating `reps` times so that
 * drift in machine load hits both sides alike; cells are medians.
 *
 * @module
 */
import type { Endpoint } from "./_client.ts";
import { download, handshakes, holdMany, latency, upload } from "./_measure.ts";
import { memKiB, peakKiB, resetPeak } from "./_proc.ts";
import type { Row } from "./_report.ts";

/** Sizes of one run. */
export interface Config {
  mib: number;
  conns: number;
  reps: number;
  rounds: number;
  warmupRounds: number;
  sequential: number;
  parallel: number;
  /** Upper bound on each latency and handshake phase. */
  phaseMs: number;
  warmupMib: number;
}

/** The two sides of a measurement: results, or the error text. */
interface Both<T> {
  raw: T[] | string;
  proxy: T[] | string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

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

/**
 * Runs a proxy's measurements; failures become "ERROR" cells and `errors`
 * lines. `tree`: memory is the PSS of the process tree (forking servers).
 */
export async function measure(
  pid: number,
  tree: boolean,
  raw: Endpoint,
  via: Endpoint,
  config: Config,
  errors: string[],
): Promise<Row[]> {
  const { mib, phaseMs, conns } = config;
  const both = async <T>(name: string, reps: number, fn: (ep: Endpoint) => Promise<T>) => {
    const out: Both<T> = { raw: [], proxy: [] };
    for (let i = 0; i < reps; i++) {
      for (const side of ["raw", "proxy"] as const) {
        const results = out[side];
        if (typeof results === "string") continue;
        try {
          results.push(await fn(side === "raw" ? raw : via));
        } catch (error) {
          errors.push(`${name} (${side}): ${String(error)}`);
          out[side] = "ERROR";
        }
      }
    }
    return out;
  };
  const same = (n: number) => n;
  const mem = () => memKiB(pid, tree);

  // Warm up the JITs of the client, the target and the proxy.
  for (const ep of [raw, via]) {
    await handshakes(ep, 50, 4, phaseMs);
    await upload(ep, config.warmupMib * 1048576);
    await download(ep, config.warmupMib * 1048576);
  }
  await sleep(500);
  const rows: Row[] = [];
  const idle = mem();
  const held = await both(
    `${conns} conns`,
    1,
    (ep) =>
      holdMany(ep, conns, 60_000 + conns * 10, async () => {
        await sleep(300);
        return mem();
      }),
  );
  const open = cell(held.proxy, (h) => h.during);
  rows.push(
    {
      name: `${conns} conns: open + echo all, ms`,
      raw: cell(held.raw, (h) => h.ms),
      proxy: cell(held.proxy, (h) => h.ms),
      ratio: true,
    },
    { name: "proxy RSS idle, MiB", proxy: idle / 1024 },
    {
      name: `proxy RSS with ${conns} open, MiB`,
      proxy: typeof open === "number" ? open / 1024 : open,
    },
    {
      name: "proxy KiB per open connection",
      proxy: typeof open === "number" ? (open - idle) / conns : open,
    },
  );

  const lat = await both(
    "echo latency",
    config.reps,
    (ep) => latency(ep, config.rounds, config.warmupRounds, phaseMs),
  );
  for (const q of ["p50", "p99"] as const) {
    rows.push({
      name: `echo latency ${q}, µs`,
      raw: cell(lat.raw, (l) => l[q]),
      proxy: cell(lat.proxy, (l) => l[q]),
      ratio: true,
    });
  }

  for (const parallel of [1, 16]) {
    const count = parallel === 1 ? config.sequential : config.parallel;
    const name = parallel === 1 ? "handshakes sequential" : "handshakes 16-way";
    const rate = await both(name, config.reps, async (ep) => {
      return (await handshakes(ep, count, parallel, phaseMs)).perSecond;
    });
    rows.push({
      name: `${name}, conn/s`,
      raw: cell(rate.raw, same),
      proxy: cell(rate.proxy, same),
      ratio: true,
    });
  }

  const bytes = mib * 1048576;
  for (const [dir, fn] of [["up", upload], ["down", download]] as const) {
    // VmHWM is exact for one process; children and kernels without clear_refs need sampling.
    const peak = !tree && resetPeak(pid) ? () => peakKiB(pid) : sampleMax(mem);
    const speed = await both(`${dir} ${mib} MiB`, config.reps, (ep) => fn(ep, bytes));
    rows.push({
      name: `${dir} ${mib} MiB, MiB/s`,
      raw: cell(speed.raw, same),
      proxy: cell(speed.proxy, same),
      ratio: true,
    }, {
      name: `proxy peak RSS during ${dir}, MiB`,
      proxy: peak() / 1024,
    });
  }
  return rows;
}

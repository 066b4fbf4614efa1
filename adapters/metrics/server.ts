/**
 * The `--metrics` listener: `/metrics`, `/healthz` and `/readyz` on a port
 * of their own, and, with `--workers`, the unix sockets over which every
 * serving process hands its metrics to the one that owns that port. No IPC
 * channel is needed, so this works the same with `node:cluster` and with
 * processes that share a port by SO_REUSEPORT.
 *
 * @module
 */
import fsp from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { METRICS_WORKER_MS } from "../../lib/limits.ts";
import type { Readiness } from "../../lib/metrics.ts";
import type { NetAddr } from "../../lib/types.ts";
import { bind } from "../server/bind.ts";
import { aggregateText, METRICS_CONTENT_TYPE, type MetricsJson } from "./registry.ts";

/** What the metrics listener answers with. */
export interface MetricsSource {
  /** This process's metrics. */
  json(): Promise<MetricsJson>;
  /** This process's `/readyz` answer; undefined where nothing is served here. */
  ready?(): Promise<Readiness>;
  /** With workers: the directory of their sockets. */
  readonly workersDir?: string;
}

/** A listening socket to close. */
export interface Closable {
  /** Stops listening (and removes a unix socket). */
  close(): Promise<void>;
}

/** The metrics listener. */
export interface MetricsServer extends Closable {
  /** The bound address (the real port when 0 was asked for). */
  readonly addr: NetAddr;
}

/** What a worker sends over its socket. */
interface WorkerReport {
  readonly metrics: MetricsJson;
  readonly ready?: Readiness;
}

/**
 * Serves `/metrics`, `/healthz` and `/readyz` on `at`.
 *
 * @example
 * ```ts
 * import { serveMetrics } from "./server.ts";
 * import { processRegistry } from "./registry.ts";
 *
 * const registry = processRegistry();
 * const server = await serveMetrics({ hostname: "127.0.0.1", port: 0 }, {
 *   json: () => registry.getMetricsAsJSON(),
 * });
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/healthz`);
 * console.log(res.status); // 200
 * await server.close();
 * ```
 */
export async function serveMetrics(at: NetAddr, source: MetricsSource): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const route = (req.url ?? "").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain", "");
    if (route === "/healthz") return send(res, 200, "text/plain", "ok\n");
    const answer = route === "/metrics"
      ? metricsText(source).then((text) => [200, METRICS_CONTENT_TYPE, text] as const)
      : route === "/readyz"
      ? readiness(source).then((r) => [r.ready ? 200 : 503, JSON_TYPE, JSON.stringify(r)] as const)
      : Promise.resolve([404, "text/plain", "Not found\n"] as const);
    answer.then(
      ([status, type, body]) => send(res, status, type, body),
      (error) => send(res, 500, "text/plain", `${String(error)}\n`),
    );
  });
  const addr = await bind(server, { hostname: at.hostname, port: at.port });
  return { addr, close: () => closeServer(server) };
}

/**
 * In a worker: hands this process's metrics and readiness to whoever
 * connects to the unix socket `file` (mode 0600).
 */
export async function serveWorkerReport(file: string, source: MetricsSource): Promise<Closable> {
  const server = net.createServer((sock) => {
    sock.on("error", () => sock.destroy());
    Promise.all([source.json(), source.ready?.()]).then(
      ([metrics, ready]) => sock.end(JSON.stringify({ metrics, ready } satisfies WorkerReport)),
      () => sock.destroy(),
    );
  });
  await bind(server, { path: file, mode: 0o600 });
  return {
    async close() {
      await closeServer(server);
      await fsp.rm(file, { force: true });
    },
  };
}

const JSON_TYPE = "application/json";

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  const bytes = new TextEncoder().encode(body);
  res.writeHead(status, {
    "content-type": type,
    "content-length": String(bytes.byteLength),
    "cache-control": "no-store",
  });
  res.end(bytes);
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** This process's metrics, and every worker's summed in when there are workers. */
async function metricsText(source: MetricsSource): Promise<string> {
  const own = await source.json();
  const reports = await workerReports(source.workersDir);
  return await aggregateText(own, reports.map((r) => r.metrics));
}

/**
 * This process's readiness, or where it serves nothing itself (the
 * `node:cluster` primary), ready when a worker is.
 */
async function readiness(source: MetricsSource): Promise<Readiness> {
  if (source.ready) return await source.ready();
  const reports = await workerReports(source.workersDir);
  const ready = reports.filter((r) => r.ready?.ready).length;
  return { ready: ready > 0, checks: { workers: `${ready} of ${reports.length} ready` } };
}

/** Every worker's report; one that does not answer in time is left out. */
async function workerReports(dir: string | undefined): Promise<WorkerReport[]> {
  if (dir === undefined) return [];
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const reports = await Promise.all(
    // Dot names are sockets still being put in place (bind.ts).
    names.filter((n) => n.endsWith(".sock") && !n.startsWith(".")).map((n) =>
      fetchReport(path.join(dir, n))
    ),
  );
  return reports.filter((r): r is WorkerReport => r !== undefined);
}

function fetchReport(file: string): Promise<WorkerReport | undefined> {
  return new Promise((resolve) => {
    const chunks: string[] = [];
    const sock = net.connect({ path: file });
    const timer = setTimeout(() => sock.destroy(), METRICS_WORKER_MS);
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => chunks.push(chunk));
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(chunks.join("")) as WorkerReport);
      } catch {
        resolve(undefined);
      }
    });
  });
}

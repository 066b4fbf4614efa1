/**
 * The Prometheus registry behind `--metrics` (prom-client): the proxy's
 * metrics, fed by an {@link Observer} and read from the sessions at scrape
 * time, plus prom-client's default `process_*` metrics.
 *
 * @module
 */
import {
  AggregatorRegistry,
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from "prom-client";
import type { LiveBytes, Observer } from "../../lib/metrics.ts";

/** What the session gauge and byte counter read at scrape time. */
export interface LiveSessions {
  readonly size: number;
  liveBytes(): LiveBytes;
}

/** One process's metrics as `getMetricsAsJSON()` gives them. */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** A registry with the proxy's metrics, and the observer that feeds it. */
export interface ProxyMetrics {
  readonly registry: Registry;
  readonly observer: Observer;
  /** Where the live figures come from, once the sessions exist. */
  watch(sessions: LiveSessions): void;
}

/** Session lengths: from a refused password to a working day. */
const DURATION_BUCKETS = [0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600];

/** A registry with prom-client's default `process_*` metrics. */
export function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Its nodejs_* metrics are Node's view (some differ on Deno and Bun), and
  // three gauges named *_total fail `promtool check metrics`.
  for (const metric of registry.getMetricsAsArray()) {
    const { name } = metric as unknown as { name: string };
    if (!name.startsWith("process_")) registry.removeSingleMetric(name);
  }
  return registry;
}

/**
 * Creates the proxy's metrics; `tokens` registers the token lookup histogram.
 *
 * @example
 * ```ts
 * import { createProxyMetrics } from "./registry.ts";
 *
 * const metrics = createProxyMetrics(false);
 * metrics.observer.refused(403);
 * console.log(await metrics.registry.metrics()); // websockify_handshakes_refused_total{status="403"} 1 ...
 * ```
 */
export function createProxyMetrics(tokens: boolean): ProxyMetrics {
  const registry = processRegistry();
  const registers = [registry];
  let sessions: LiveSessions | undefined;
  new Gauge({
    name: "websockify_sessions_active",
    help: "WebSocket sessions running now",
    registers,
    collect() {
      this.set(sessions?.size ?? 0);
    },
  });
  const total = new Counter({
    name: "websockify_sessions_total",
    help: "WebSocket sessions that reached 101 Switching Protocols",
    registers,
  });
  const refused = new Counter({
    name: "websockify_handshakes_refused_total",
    help: "WebSocket upgrades refused, by HTTP status",
    labelNames: ["status"],
    registers,
  });
  // Ended sessions' bytes; live ones are added at scrape time.
  let endedToTarget = 0;
  let endedToClient = 0;
  new Counter({
    name: "websockify_bytes_total",
    help: "Payload bytes forwarded, by direction",
    labelNames: ["direction"],
    registers,
    collect() {
      const live = sessions?.liveBytes() ?? { toTarget: 0, toClient: 0 };
      this.reset();
      this.inc({ direction: "to_target" }, endedToTarget + live.toTarget);
      this.inc({ direction: "to_client" }, endedToClient + live.toClient);
    },
  });
  const duration = new Histogram({
    name: "websockify_session_duration_seconds",
    help: "How long WebSocket sessions lasted",
    buckets: DURATION_BUCKETS,
    registers,
  });
  const connect = new Histogram({
    name: "websockify_target_connect_seconds",
    help: "How long connecting to a target took, successful or not",
    registers,
  });
  const connectFailures = new Counter({
    name: "websockify_target_connect_failures_total",
    help: "Target connections that failed",
    registers,
  });
  const lookup = tokens
    ? new Histogram({
      name: "websockify_token_lookup_seconds",
      help: "How long token lookups took, successful or not",
      registers,
    })
    : undefined;
  const observer: Observer = {
    opened: () => total.inc(),
    closed(toTarget, toClient, seconds) {
      endedToTarget += toTarget;
      endedToClient += toClient;
      duration.observe(seconds);
    },
    refused: (status) => refused.inc({ status: String(status) }),
    connected(ok, seconds) {
      connect.observe(seconds);
      if (!ok) connectFailures.inc();
    },
    tokenLookup: (seconds) => lookup?.observe(seconds),
  };
  return { registry, observer, watch: (live) => void (sessions = live) };
}

/**
 * The text exposition of several processes' metrics, summed (gauges too);
 * `own` is this process's, whose start time stands for the whole server.
 */
export async function aggregateText(own: MetricsJson, others: MetricsJson[]): Promise<string> {
  const registry = AggregatorRegistry.aggregate([own, ...others]);
  // Summing start times means nothing, so prom-client omits them.
  const start = own.find((m) => m.name === "process_start_time_seconds")?.values[0]?.value;
  if (start !== undefined && !registry.getSingleMetric("process_start_time_seconds")) {
    new Gauge({
      name: "process_start_time_seconds",
      help: "Start time of the process since unix epoch in seconds.",
      registers: [registry],
    }).set(start);
  }
  return await registry.metrics();
}

/** The text exposition's content type. */
export const METRICS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

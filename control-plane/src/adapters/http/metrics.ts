// Prometheus metrics for one control-plane process. A registry per instance, so several instances in one process
// (tests, benchmarks) do not share counters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "ferry_" });
  return {
    registry,
    agentsConnected: new Gauge({ name: "ferry_agents_connected", help: "Agents with a live Connect stream on this replica", registers: [registry] }),
    agentConnections: new Gauge({ name: "ferry_agent_tls_connections", help: "TLS connections open on the agent listener", registers: [registry] }),
    heartbeats: new Counter({ name: "ferry_heartbeats_total", help: "Heartbeats received", registers: [registry] }),
    refusals: new Counter({ name: "ferry_agent_refusals_total", help: "Agent-facing calls refused, by code", labelNames: ["code", "listener"] as const, registers: [registry] }),
    enrolments: new Counter({ name: "ferry_enrolments_total", help: "Enrolment attempts by outcome", labelNames: ["outcome"] as const, registers: [registry] }),
    livenessWrites: new Counter({ name: "ferry_liveness_rows_written_total", help: "Agent rows written by the liveness recorder, by kind", labelNames: ["kind"] as const, registers: [registry] }),
    httpRequests: new Histogram({
      name: "ferry_http_request_duration_seconds",
      help: "API request duration",
      labelNames: ["method", "route", "status"] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

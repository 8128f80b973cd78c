import { collectDefaultMetrics, Registry } from "prom-client";

/** A Prometheus registry per process, with Node's runtime metrics and the process's name on every series. */
export function createMetricsRegistry(process: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ process });
  collectDefaultMetrics({ register: registry });
  return registry;
}

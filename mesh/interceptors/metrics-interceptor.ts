import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, Histogram, type Registry } from "prom-client";
import { wrapIterable } from "./scoped-iterable.js";

/** The RED series of a process's servers, shared by the network server and the in-process transport. */
export function rpcServerMetrics(registry: Registry): { requests: Counter; duration: Histogram } {
  const requests =
    (registry.getSingleMetric("rpc_server_requests_total") as Counter | undefined) ??
    new Counter({
    name: "rpc_server_requests_total",
    help: "RPCs handled, by method and status code",
    labelNames: ["rpc", "code"],
    registers: [registry],
  });
  const duration =
    (registry.getSingleMetric("rpc_server_duration_seconds") as Histogram | undefined) ??
    new Histogram({
    name: "rpc_server_duration_seconds",
    help: "Time from receiving an RPC to finishing its response",
    labelNames: ["rpc"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return { requests, duration };
}

/** RED metrics per RPC: requests and errors by code, and a latency histogram (streams: until they end). */
export function createMetricsInterceptor(registry: Registry): Interceptor {
  const { requests, duration } = rpcServerMetrics(registry);
  return (next) => async (req) => {
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const stop = duration.startTimer({ rpc });
    const done = (err?: unknown) => {
      stop();
      requests.inc({ rpc, code: err === undefined ? "ok" : Code[ConnectError.from(err).code] });
    };
    let res;
    try {
      res = await next(req);
    } catch (err) {
      done(err);
      throw err;
    }
    if (!res.stream) {
      done();
      return res;
    }
    let finished = false;
    return {
      ...res,
      message: wrapIterable(res.message, async (step) => {
        try {
          const result = await step();
          if (result.done && !finished) {
            finished = true;
            done();
          }
          return result;
        } catch (err) {
          if (!finished) {
            finished = true;
            done(err);
          }
          throw err;
        }
      }),
    };
  };
}

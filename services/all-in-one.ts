// `npm start`: every service in one process on in-memory adapters, no infrastructure needed.
// Services mount here as they are implemented; until then the process serves health and metrics.
import { createLogger } from "../mesh/logger.js";
import { createMetricsRegistry } from "../mesh/metrics.js";
import { startServer } from "../mesh/server.js";
import { ConfigError, loadConfig } from "../platform/config.js";

const services = ["gateway", "auth", "user", "msg", "group"] as const;

try {
  const config = loadConfig("all-in-one", services);
  const logger = createLogger("all-in-one", config.logLevel);
  const server = await startServer({
    name: "all-in-one",
    host: config.host,
    port: config.ports.gateway,
    services: [],
    metrics: createMetricsRegistry("all-in-one"),
    logger,
  });
  process.stdout.write(
    [
      "",
      `im-mesh is running (all-in-one, in-memory adapters) at ${server.url}`,
      `  health:  npx buf curl --schema proto --protocol grpc --http2-prior-knowledge ${server.url}/grpc.health.v1.Health/Check`,
      `  metrics: curl ${server.url}/metrics`,
      "  stop:    Ctrl-C",
      "",
    ].join("\n"),
  );
  const stop = (signal: NodeJS.Signals) => {
    logger.info({ signal }, "draining");
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "drain failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`im-mesh: configuration error: ${err.message}\n`);
    process.exit(2);
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") {
    process.stderr.write(`im-mesh: the port is already in use; set IM_GATEWAY_PORT to another port (0 picks a free one)\n`);
    process.exit(2);
  }
  throw err;
}

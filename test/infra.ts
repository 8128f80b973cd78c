// Connection settings for suites tagged @infra. They fail (never skip) when a setting is missing:
// CI must not pass by silently leaving out the real dependencies.

/** The value of an IM_* connection variable, or a failure that says how to provide the infrastructure. */
export function infraEnv(name: "IM_ETCD_ENDPOINTS" | "IM_MYSQL_URL" | "IM_REDIS_URL" | "IM_KAFKA_BROKERS"): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run integration suites with 'make test' (it starts etcd, MariaDB, Redis and Kafka)`);
  }
  return value;
}

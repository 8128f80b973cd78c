/** How the process runs: everything in one process on in-memory adapters, or one service per process on real infrastructure. */
export type RunMode = "all-in-one" | "mesh";

/** Connection settings of the real infrastructure; in all-in-one mode an absent one selects the in-memory adapter. */
export interface InfraConfig {
  readonly etcdEndpoints?: readonly string[];
  readonly mysqlUrl?: string;
  readonly redisUrl?: string;
  readonly kafkaBrokers?: readonly string[];
}

/** Typed settings of one process, read once from the environment at start. */
export interface Config {
  readonly mode: RunMode;
  readonly host: string;
  readonly ports: Readonly<Record<ServiceName, number>>;
  readonly infra: InfraConfig;
  readonly logLevel: LogLevel;
}

/** The five services of DESIGN.md §2, as named in processes, ports and the registry. */
export type ServiceName = "gateway" | "auth" | "user" | "msg" | "group";

/** pino's log levels, accepted in IM_LOG_LEVEL. */
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/** Thrown at start when a setting is missing or malformed; the message names the variable and what to set. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

/** Default ports of DESIGN.md §5. */
export const defaultPorts: Readonly<Record<ServiceName, number>> = {
  gateway: 8080,
  auth: 9101,
  user: 9102,
  msg: 9103,
  group: 9104,
};

const logLevels: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

type Env = Readonly<Record<string, string | undefined>>;

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === "" ? undefined : value;
}

function port(env: Env, name: string, fallback: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ConfigError(name, `"${raw}" is not a port number (0-65535; 0 picks a free port)`);
  }
  return value;
}

function url(env: Env, name: string, protocols: readonly string[], example: string): string | undefined {
  const raw = text(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `"${redact(raw)}" is not a URL (example: ${example})`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `expected a ${protocols.join(" or ")} URL, got "${parsed.protocol}" (example: ${example})`);
  }
  return raw;
}

function hostList(env: Env, name: string, example: string): string[] | undefined {
  const raw = text(env, name);
  if (raw === undefined) return undefined;
  const hosts = raw.split(",").map((h) => h.trim()).filter((h) => h !== "");
  for (const host of hosts) {
    const bare = host.replace(/^https?:\/\//, "");
    if (!/^[A-Za-z0-9.[\]:-]+:\d{1,5}$/.test(bare)) {
      throw new ConfigError(name, `"${host}" is not host:port (example: ${example})`);
    }
  }
  if (hosts.length === 0) throw new ConfigError(name, `is empty (example: ${example})`);
  return hosts;
}

/** Hides a password in a URL so a configuration error never prints a secret. */
export function redact(value: string): string {
  return value.replace(/\/\/([^:/@]+):[^@/]*@/, "//$1:***@");
}

/** Which infrastructure variables each service needs in mesh mode (all-in-one needs none). */
export const meshRequirements: Readonly<Record<ServiceName, readonly (keyof InfraConfig)[]>> = {
  gateway: ["etcdEndpoints", "redisUrl"],
  auth: ["etcdEndpoints", "mysqlUrl", "redisUrl"],
  user: ["etcdEndpoints", "mysqlUrl", "redisUrl"],
  msg: ["etcdEndpoints", "mysqlUrl", "redisUrl", "kafkaBrokers"],
  group: ["etcdEndpoints", "mysqlUrl", "redisUrl", "kafkaBrokers"],
};

const variableOf: Readonly<Record<keyof InfraConfig, string>> = {
  etcdEndpoints: "IM_ETCD_ENDPOINTS",
  mysqlUrl: "IM_MYSQL_URL",
  redisUrl: "IM_REDIS_URL",
  kafkaBrokers: "IM_KAFKA_BROKERS",
};

/**
 * Reads and validates the settings once; in mesh mode every infrastructure variable the given services need
 * must be set, so a missing dependency stops the process at start instead of falling back to memory.
 */
export function loadConfig(mode: RunMode, services: readonly ServiceName[], env: Env = process.env): Config {
  const infra: InfraConfig = {
    etcdEndpoints: hostList(env, "IM_ETCD_ENDPOINTS", "http://127.0.0.1:2379"),
    mysqlUrl: url(env, "IM_MYSQL_URL", ["mysql:"], "mysql://im_service:secret@127.0.0.1:3306/im_chat"),
    redisUrl: url(env, "IM_REDIS_URL", ["redis:", "rediss:"], "redis://127.0.0.1:6379/0"),
    kafkaBrokers: hostList(env, "IM_KAFKA_BROKERS", "127.0.0.1:9092"),
  };
  if (mode === "mesh") {
    for (const service of services) {
      for (const need of meshRequirements[service]) {
        if (infra[need] === undefined) {
          throw new ConfigError(variableOf[need], `must be set to run the ${service} service in mesh mode`);
        }
      }
    }
  }
  const logLevel = (text(env, "IM_LOG_LEVEL") ?? "info") as LogLevel;
  if (!logLevels.includes(logLevel)) {
    throw new ConfigError("IM_LOG_LEVEL", `"${logLevel}" is not one of ${logLevels.join(", ")}`);
  }
  return {
    mode,
    host: text(env, "IM_HOST") ?? "127.0.0.1",
    ports: {
      gateway: port(env, "IM_GATEWAY_PORT", defaultPorts.gateway),
      auth: port(env, "IM_AUTH_PORT", defaultPorts.auth),
      user: port(env, "IM_USER_PORT", defaultPorts.user),
      msg: port(env, "IM_MSG_PORT", defaultPorts.msg),
      group: port(env, "IM_GROUP_PORT", defaultPorts.group),
    },
    infra,
    logLevel,
  };
}

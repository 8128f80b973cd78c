import { isIP } from "node:net";

/** How the process runs: everything in one process on in-memory adapters, or one service per process on real infrastructure. */
export type RunMode = "all-in-one" | "mesh";

/** Connection settings of the real infrastructure; in all-in-one mode an absent one selects the in-memory adapter. */
export interface InfraConfig {
  readonly etcdEndpoints?: readonly string[];
  readonly mysqlUrl?: string;
  readonly redisUrl?: string;
  readonly kafkaBrokers?: readonly string[];
  /** A key prefix in etcd, so several meshes (or test runs) share one etcd without seeing each other. */
  readonly etcdNamespace?: string;
}

/** Credentials from the environment; never logged. */
export interface SecretsConfig {
  /** Signs service-to-service credentials (IM_MESH_SECRET, at least 32 characters); required in mesh mode. */
  readonly meshSecret?: string;
  /** The operator's bearer credential for admin RPCs (IM_ADMIN_TOKEN); admin RPCs are refused without it. */
  readonly adminToken?: string;
  /** The auth service's private Ed25519 JWKs as JSON (IM_AUTH_SIGNING_KEYS), newest first; required for auth in mesh mode. */
  readonly authSigningKeys?: string;
}

/** A token bucket as configured: `capacity` at once, refilled at `refillPerSecond` (the Kv's BucketSpec). */
export interface RateSpec {
  readonly capacity: number;
  readonly refillPerSecond: number;
}

/** Abuse limits (SECURITY.md); an unset limit (IM_…=off) is not enforced. */
export interface LimitsConfig {
  /** Messages one user may send (IM_SEND_RATE_USER, default 50/10: 50 at once, then 5 a second). */
  readonly sendPerUser?: RateSpec;
  /** Messages all users of one app may send together (IM_SEND_RATE_APP, default 2000/1). */
  readonly sendPerApp?: RateSpec;
  /** Accounts one client address may register in an app (IM_REGISTER_RATE_ADDRESS, default 10/3600). */
  readonly registerPerAddress?: RateSpec;
  /** Accounts an app may gain from everyone together (IM_REGISTER_RATE_APP, default 100/60). */
  readonly registerPerApp?: RateSpec;
  /**
   * Proxies in front of the gateway whose x-forwarded-for entries are believed (IM_TRUSTED_PROXIES: IP addresses
   * and CIDR ranges, comma-separated; default none, so the client's socket address is used).
   */
  readonly trustedProxies: readonly string[];
}

/** Typed settings of one process, read once from the environment at start. */
export interface Config {
  readonly mode: RunMode;
  readonly host: string;
  readonly ports: Readonly<Record<ServiceName, number>>;
  readonly infra: InfraConfig;
  readonly logLevel: LogLevel;
  readonly secrets: SecretsConfig;
  /** Registry lease TTL in seconds (IM_LEASE_TTL_SECONDS, default 90). */
  readonly leaseTtlSeconds: number;
  /** Heartbeat period the gateway announces (IM_HEARTBEAT_SECONDS, default 30); 3 missed close a stream. */
  readonly heartbeatSeconds: number;
  /** How long senders may edit or recall a message (IM_MSG_EDIT_WINDOW_SECONDS, default 900). */
  readonly msgEditWindowSeconds: number;
  /** Groups with more members than this get no typing frames (IM_TYPING_MAX_MEMBERS, default 100). */
  readonly typingMaxMembers: number;
  /** Groups with more members than this get no offline inbox copies; their members sync (IM_OFFLINE_INBOX_MAX_MEMBERS, default 500). */
  readonly offlineInboxMaxMembers: number;
  /** The address other processes reach this one at (IM_ADVERTISE_HOST, e.g. the pod IP); default: the listening host. */
  readonly advertiseHost?: string;
  /** Rate limits and the proxies trusted to name clients' addresses. */
  readonly limits: LimitsConfig;
}

/** The five services of DESIGN.md §2, as named in processes, ports and the registry. */
export type ServiceName = "gateway" | "auth" | "user" | "msg" | "group" | "fanout";

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
  fanout: 9106,
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

function wholeNumber(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(name, `must be a whole number between ${min} and ${max}`);
  return value;
}

/** A rate as "<burst>/<seconds>" (burst events at once, refilled evenly over the seconds), or "off". */
function rate(env: Env, name: string, fallback: string): RateSpec | undefined {
  const raw = text(env, name) ?? fallback;
  if (raw.toLowerCase() === "off") return undefined;
  const match = /^(\d{1,9})\s*\/\s*(\d{1,9})$/.exec(raw);
  const capacity = Number(match?.[1]);
  const seconds = Number(match?.[2]);
  if (match === null || capacity < 1 || seconds < 1) throw new ConfigError(name, `"${raw}" is not a rate (example: 50/10 for 50 at once and 5 a second after, or off)`);
  return { capacity, refillPerSecond: capacity / seconds };
}

function addressList(env: Env, name: string): string[] {
  const raw = text(env, name);
  if (raw === undefined) return [];
  const entries = raw.split(",").map((e) => e.trim()).filter((e) => e !== "");
  for (const entry of entries) {
    const [address, bits, extra] = entry.split("/");
    const family = isIP(address ?? "");
    const maxBits = family === 4 ? 32 : 128;
    if (family === 0 || extra !== undefined || (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= maxBits))) {
      throw new ConfigError(name, `"${entry}" is not an IP address or CIDR range (example: 10.0.0.0/8,192.0.2.7)`);
    }
  }
  return entries;
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
  fanout: ["etcdEndpoints", "mysqlUrl", "redisUrl", "kafkaBrokers"],
};

const variableOf: Readonly<Record<keyof InfraConfig, string>> = {
  etcdEndpoints: "IM_ETCD_ENDPOINTS",
  mysqlUrl: "IM_MYSQL_URL",
  redisUrl: "IM_REDIS_URL",
  kafkaBrokers: "IM_KAFKA_BROKERS",
  etcdNamespace: "IM_ETCD_NAMESPACE",
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
    etcdNamespace: text(env, "IM_ETCD_NAMESPACE"),
  };
  const secrets: SecretsConfig = {
    meshSecret: text(env, "IM_MESH_SECRET"),
    adminToken: text(env, "IM_ADMIN_TOKEN"),
    authSigningKeys: text(env, "IM_AUTH_SIGNING_KEYS"),
  };
  for (const [name, value] of [["IM_MESH_SECRET", secrets.meshSecret], ["IM_ADMIN_TOKEN", secrets.adminToken]] as const) {
    if (value !== undefined && value.length < 32) throw new ConfigError(name, "must be at least 32 characters (e.g. openssl rand -base64 32)");
  }
  if (mode === "mesh") {
    for (const service of services) {
      for (const need of meshRequirements[service]) {
        if (infra[need] === undefined) {
          throw new ConfigError(variableOf[need], `must be set to run the ${service} service in mesh mode`);
        }
      }
    }
    if (secrets.meshSecret === undefined) {
      throw new ConfigError("IM_MESH_SECRET", "must be set in mesh mode to the secret all services share (at least 32 characters)");
    }
    if (services.includes("auth") && secrets.authSigningKeys === undefined) {
      throw new ConfigError("IM_AUTH_SIGNING_KEYS", "must be set to run the auth service in mesh mode (generate one with `npm run keygen`)");
    }
  }
  const ttl = wholeNumber(env, "IM_LEASE_TTL_SECONDS", 90, 2, 3600);
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
      fanout: port(env, "IM_FANOUT_PORT", defaultPorts.fanout),
    },
    infra,
    logLevel,
    secrets,
    leaseTtlSeconds: ttl,
    heartbeatSeconds: wholeNumber(env, "IM_HEARTBEAT_SECONDS", 30, 1, 600),
    msgEditWindowSeconds: wholeNumber(env, "IM_MSG_EDIT_WINDOW_SECONDS", 900, 0, 30 * 86_400),
    typingMaxMembers: wholeNumber(env, "IM_TYPING_MAX_MEMBERS", 100, 0, 10_000),
    offlineInboxMaxMembers: wholeNumber(env, "IM_OFFLINE_INBOX_MAX_MEMBERS", 500, 0, 10_000),
    advertiseHost: text(env, "IM_ADVERTISE_HOST"),
    limits: {
      sendPerUser: rate(env, "IM_SEND_RATE_USER", "50/10"),
      sendPerApp: rate(env, "IM_SEND_RATE_APP", "2000/1"),
      registerPerAddress: rate(env, "IM_REGISTER_RATE_ADDRESS", "10/3600"),
      registerPerApp: rate(env, "IM_REGISTER_RATE_APP", "100/60"),
      trustedProxies: addressList(env, "IM_TRUSTED_PROXIES"),
    },
  };
}

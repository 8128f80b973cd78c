// The wiring every im-mesh process shares: configuration, logs, metrics, adapters, mesh clients, token checks and
// the drain on SIGTERM. A service describes itself as a ServiceModule; `runService` runs one in mesh mode (its
// main.ts), and `services/all-in-one.ts` runs them all in one process through the same code.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import type { Registry as Metrics } from "prom-client";
import { AuthInternalService } from "../gen/im/auth/v1/auth_pb.js";
import { createLocalTransport, exitOnSignals, startServiceProcess, type ServiceProcess } from "../mesh/bootstrap.js";
import { ServiceDirectory } from "../mesh/directory.js";
import { createMeshVerifier, ServiceCredentials, type CredentialVerifier } from "../mesh/identity.js";
import { createLogger } from "../mesh/logger.js";
import { createMetricsRegistry } from "../mesh/metrics.js";
import type { MountedService } from "../mesh/server.js";
import { MeshClients } from "../mesh/service-client.js";
import { AccessTokenVerifier, Revocations, type KeySource, type PublicKeyInfo } from "../mesh/user-tokens.js";
import { scopedBus, scopeOfNamespace, type Bus } from "../platform/bus/bus.js";
import { withDeadLetters } from "../platform/bus/dead-letters.js";
import { KafkaBus } from "../platform/bus/kafka-bus.js";
import { MemoryBus } from "../platform/bus/memory-bus.js";
import { topics } from "../platform/bus/topics.js";
import { ConfigError, loadConfig, type Config, type RunMode, type ServiceName } from "../platform/config.js";
import type { Kv } from "../platform/kv/kv.js";
import { MemoryKv } from "../platform/kv/memory-kv.js";
import { RedisKv } from "../platform/kv/redis-kv.js";
import { EtcdRegistry } from "../platform/registry/etcd-registry.js";
import { MemoryRegistry } from "../platform/registry/memory-registry.js";
import type { Registration, Registry } from "../platform/registry/registry.js";
import { seedDemo } from "../platform/store/demo-data.js";
import { MemoryTables } from "../platform/store/memory-tables.js";
import { SqlDatabase } from "../platform/store/sql.js";

/** Where a service keeps its rows: MySQL in mesh mode, shared in-memory tables (with the demo data) all-in-one. */
export type Store = { readonly kind: "sql"; readonly db: SqlDatabase } | { readonly kind: "memory"; readonly tables: MemoryTables };

/** What a service module builds its handlers from; one per process, shared by every module in it. */
export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly credentials: ServiceCredentials;
  readonly registry: Registry;
  readonly directory: ServiceDirectory;
  readonly clients: MeshClients;
  readonly kv: Kv;
  readonly store: Store;
  /** The bus; a service that uses it lists IM_KAFKA_BROKERS among its mesh requirements. */
  readonly bus: Bus;
  readonly revocations: Revocations;
  /** Verifies user access tokens locally, with keys from the auth service (or the auth module in this process). */
  readonly userTokens: AccessTokenVerifier;
  /** The auth module publishes its own keys here, so its process never asks itself over the network. */
  provideKeys(source: KeySource): void;
  /** Runs at shutdown, after the server has drained, last registered first. */
  onStop(close: () => Promise<void>): void;
  /** This process's instance id in the registry (a gateway's routes name it). */
  readonly instanceId: string;
  /** The process's registration, once it is serving: keys put through it live and die with the process's lease. */
  registration(): Promise<Registration>;
  /** Runs before the server drains on shutdown (a gateway tells its clients to reconnect elsewhere). */
  onDrain(drain: () => Promise<void>): void;
}

/** One service as a process runs it: a name and how to build its RPC handlers. */
export interface ServiceModule {
  readonly name: ServiceName;
  build(rt: Runtime): Promise<MountedService[]>;
}

/** The keys ListVerificationKeys publishes, as the verifier takes them. */
function toKeyInfo(keys: readonly { kid: string; jwkJson: string; retireAfter?: Parameters<typeof timestampDate>[0] }[]): PublicKeyInfo[] {
  return keys.map((k) => ({ kid: k.kid, jwk: JSON.parse(k.jwkJson), retireAfter: k.retireAfter ? timestampDate(k.retireAfter).getTime() : undefined }));
}

/** Opens the adapters the mode calls for, and everything the modules share. */
async function openRuntime(mode: RunMode, name: string, services: readonly ServiceName[], env?: Readonly<Record<string, string | undefined>>): Promise<{ rt: Runtime; close: () => Promise<void> }> {
  const config = loadConfig(mode, services, env);
  const logger = createLogger(name, config.logLevel);
  const metrics = createMetricsRegistry(name);
  const closers: (() => Promise<void>)[] = [];
  // Closes in reverse order of opening.
  const close = async () => {
    for (const closer of closers.splice(0).reverse()) {
      await closer().catch((err: unknown) => logger.warn({ err }, "closing failed"));
    }
  };
  try {
    return { rt: await openAdapters(config, name, logger, metrics, closers), close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function openAdapters(config: Config, name: string, logger: Logger, metrics: Metrics, closers: (() => Promise<void>)[]): Promise<Runtime> {
  const { infra, secrets } = config;
  // All-in-one calls between services never leave the process, so a per-process secret is enough there.
  const credentials = new ServiceCredentials(secrets.meshSecret ?? randomBytes(32).toString("base64url"), name);
  const registry: Registry = infra.etcdEndpoints ? new EtcdRegistry(infra.etcdEndpoints, { namespace: infra.etcdNamespace }) : new MemoryRegistry();
  closers.push(() => registry.close());
  const directory = await ServiceDirectory.open(registry);
  closers.push(() => directory.close());
  const clients = new MeshClients({ directory, credentials, metrics });
  closers.push(() => clients.close());
  const kv: Kv = infra.redisUrl ? await RedisKv.connect(infra.redisUrl) : new MemoryKv();
  closers.push(() => kv.close());
  let store: Store;
  if (infra.mysqlUrl) {
    store = { kind: "sql", db: await SqlDatabase.connect(infra.mysqlUrl) };
    closers.push(() => (store as { db: SqlDatabase }).db.close());
  } else {
    const tables = new MemoryTables();
    seedDemo(tables);
    store = { kind: "memory", tables };
  }
  // The etcd namespace is what separates deployments sharing infrastructure; the bus is scoped by it too.
  const scope = scopeOfNamespace(infra.etcdNamespace);
  // A record no consumer can ever process goes to its topic's dead letters instead of halting its partition.
  const bus: Bus = withDeadLetters(infra.kafkaBrokers ? scopedBus(new KafkaBus(infra.kafkaBrokers, { clientId: name }), scope) : new MemoryBus(), { logger, metrics });
  closers.push(() => bus.close());
  // Kafka's topics are the operator's (infra-up, the helm chart); the in-memory bus gets them here.
  if (!infra.kafkaBrokers) await bus.ensureTopics(topics);
  const revocations = new Revocations(kv);
  let keySource: KeySource = {
    fetch: async () => toKeyInfo((await clients.client(AuthInternalService).listVerificationKeys({})).keys),
  };
  const userTokens = new AccessTokenVerifier([], (q) => revocations.isRevoked(q), {
    fetch: () => keySource.fetch(),
    get minRefetchMs() {
      return keySource.minRefetchMs;
    },
  });
  let registered!: (r: Registration) => void;
  const registration = new Promise<Registration>((resolve) => (registered = resolve));
  const drains: (() => Promise<void>)[] = [];
  const rt: Runtime & { registered: typeof registered; drains: typeof drains } = {
    instanceId: `${name}-${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`,
    registration: () => registration,
    registered,
    drains,
    onDrain: (drain) => void drains.push(drain),
    config,
    logger,
    metrics,
    credentials,
    registry,
    directory,
    clients,
    kv,
    store,
    bus,
    revocations,
    userTokens,
    provideKeys: (source) => {
      keySource = source;
    },
    onStop: (close) => void closers.push(close),
  };
  return rt;
}

/** A running process of one or more modules. */
export interface RunningProcess {
  readonly runtime: Runtime;
  readonly process: ServiceProcess;
  /** Drains and closes everything (what SIGTERM does). */
  stop(): Promise<void>;
}

/**
 * Starts the modules in one process on one port: builds their handlers, serves them with the standard
 * interceptors, registers them under one lease, and fetches the token keys once the auth service is reachable.
 */
export async function startProcess(options: {
  mode: RunMode;
  name: string;
  modules: readonly ServiceModule[];
  /** The port to listen on (default: the configured port of the service, or the gateway's all-in-one). */
  port?: number;
  /** Settings to read instead of the process environment (tests). */
  env?: Readonly<Record<string, string | undefined>>;
}): Promise<RunningProcess> {
  const names = options.modules.map((m) => m.name);
  const { rt, close } = await openRuntime(options.mode, options.name, names, options.env);
  try {
    const services: MountedService[] = [];
    for (const module of options.modules) {
      // A forwarding proxy (the gateway's) yields to the real service when both run in this process.
      for (const s of await module.build(rt)) {
        const i = services.findIndex((m) => m.desc.typeName === s.desc.typeName);
        if (i < 0) services.push(s);
        else if (services[i]!.proxy && !s.proxy) services[i] = s;
      }
    }
    const verifier: CredentialVerifier = createMeshVerifier({
      serviceCredentials: rt.credentials,
      adminToken: rt.config.secrets.adminToken,
      verifyUser: (token) => rt.userTokens.verify(token),
    });
    rt.clients.serveLocally({ ...createLocalTransport(services, { logger: rt.logger, metrics: rt.metrics, verifier }), instanceId: rt.instanceId });
    const running = await startServiceProcess({
      name: options.name,
      instanceId: rt.instanceId,
      publicEdge: names.includes("gateway"),
      host: rt.config.host,
      advertiseHost: rt.config.advertiseHost,
      // All-in-one serves on the gateway's port, the public edge; a mesh process on its service's port.
      port: options.port ?? rt.config.ports[options.mode === "all-in-one" ? "gateway" : names[0]!],
      services,
      registry: rt.registry,
      verifier,
      logger: rt.logger,
      metrics: rt.metrics,
      leaseTtlSeconds: rt.config.leaseTtlSeconds,
    });
    const internals = rt as Runtime & { registered: (r: Registration) => void; drains: (() => Promise<void>)[] };
    internals.registered(running.registration);
    // Warm the key cache; until it succeeds, the first token seen triggers the fetch itself.
    rt.userTokens.refresh().catch((err: unknown) => rt.logger.info({ err: String(err) }, "token keys not fetched yet; fetching on first use"));
    let stopping: Promise<void> | undefined;
    return {
      runtime: rt,
      process: running,
      stop: () =>
        (stopping ??= (async () => {
          for (const drain of internals.drains) await drain().catch((err: unknown) => rt.logger.warn({ err }, "drain step failed"));
          await running.stop();
          await close();
        })()),
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Prints a configuration or port problem as one line and exits 2; anything else is thrown. */
export function exitOnStartupError(err: unknown, portVariable = "the IM_<SERVICE>_PORT variable"): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`im-mesh: configuration error: ${err.message}\n`);
    process.exit(2);
  }
  if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") {
    process.stderr.write(`im-mesh: the port is already in use; set ${portVariable} to another port (0 picks a free one)\n`);
    process.exit(2);
  }
  throw err;
}

/** A service's main in mesh mode: starts it, prints "ready <port>", and drains on SIGTERM/SIGINT. */
export async function runService(module: ServiceModule): Promise<void> {
  try {
    const running = await startProcess({ mode: "mesh", name: module.name, modules: [module] });
    process.stdout.write(`ready ${running.process.server.port}\n`);
    exitOnSignals(() => running.stop(), running.runtime.logger);
  } catch (err) {
    exitOnStartupError(err, `IM_${module.name.toUpperCase()}_PORT`);
  }
}

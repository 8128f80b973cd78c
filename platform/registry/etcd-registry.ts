import { Etcd3, EtcdError, EtcdLeaseInvalidError, type Lease, type Namespace, type Watcher } from "etcd3";
import { UnavailableError } from "../errors.js";
import {
  encodeInstance,
  instanceKey,
  regrantDelayMs,
  ViewState,
  type PrefixView,
  type RegisterOptions,
  type Registration,
  type Registry,
  type ServiceInstance,
} from "./registry.js";

/** Options of the etcd adapter. */
export interface EtcdRegistryOptions {
  /** Deadline of each unary call (default 5 s); watch and keepalive streams have none. */
  readonly callTimeoutMs?: number;
  /** A key prefix isolating this deployment (or test) from others sharing the etcd cluster. */
  readonly namespace?: string;
}

/** How long a put on an expired lease waits for the recovery's new lease before it fails. */
const leaseRecoveryWaitMs = 5_000;

function unavailable(what: string, err: unknown): unknown {
  if (err instanceof EtcdError || (err instanceof Error && /deadline|unavailable|ECONNREFUSED|No connection/i.test(err.message))) {
    return new UnavailableError("etcd", `${what}: ${err.message}`, { cause: err });
  }
  return err;
}

/**
 * The etcd Registry for mesh mode (etcd3). Leases are renewed by the library every TTL/3; on `lost` a new
 * lease is granted and every key put again, with jittered backoff. Views list a prefix, then watch from the
 * listed revision + 1; when etcd cancels a watch (compaction) the view lists again and emits the differences.
 */
export class EtcdRegistry implements Registry {
  private readonly root: Etcd3;
  /** The (possibly namespaced) client every operation goes through. */
  readonly client: Namespace;
  private readonly closers = new Set<() => Promise<void>>();

  constructor(endpoints: readonly string[], options: EtcdRegistryOptions = {}) {
    const timeout = options.callTimeoutMs ?? 5000;
    this.root = new Etcd3({
      hosts: [...endpoints],
      dialTimeout: 3000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: new Date(Date.now() + timeout) }),
    });
    this.client = options.namespace ? this.root.namespace(options.namespace) : this.root;
  }

  async get(key: string): Promise<string | undefined> {
    try {
      return (await this.client.get(key).string()) ?? undefined;
    } catch (err) {
      throw unavailable(`reading ${key}`, err);
    }
  }

  async list(prefix: string): Promise<Map<string, string>> {
    try {
      return new Map(Object.entries(await this.client.getAll().prefix(prefix).strings()));
    } catch (err) {
      throw unavailable(`listing ${prefix}`, err);
    }
  }

  async register(instance: ServiceInstance, options: RegisterOptions = {}): Promise<Registration> {
    const key = instanceKey(instance.service, instance.instanceId);
    const value = encodeInstance(instance);
    const ttl = options.ttlSeconds ?? 90;
    const attached = new Map<string, string>();
    let lease: Lease | undefined;
    let id = "";
    let done = false;
    let recovering: Promise<void> | undefined;

    const open = async (): Promise<void> => {
      const next = this.client.lease(ttl, { autoKeepAlive: true });
      // Only the current lease's loss matters; a lease from a failed attempt must not start recoveries of its own.
      next.on("lost", () => {
        if (lease === next) void recover();
      });
      try {
        id = await next.grant();
        await next.put(key).value(value);
        for (const [k, v] of attached) await next.put(k).value(v);
      } catch (err) {
        next.release();
        throw err;
      }
      lease = next;
    };
    const recover = (): Promise<void> =>
      (recovering ??= (async () => {
        try {
          for (let attempt = 1; !done; attempt++) {
            try {
              await open();
              options.onRenewed?.();
              return;
            } catch (err) {
              options.onError?.(unavailable("re-granting a lost lease", err));
              await new Promise((r) => setTimeout(r, regrantDelayMs(attempt)));
            }
          }
        } finally {
          recovering = undefined;
        }
      })());

    try {
      await open();
    } catch (err) {
      done = true;
      throw unavailable(`registering ${key}`, err);
    }
    const registration: Registration = {
      key,
      leaseId: () => id,
      put: async (k, v) => {
        attached.set(k, v);
        try {
          await lease!.put(k).value(v);
        } catch (err) {
          if (!(err instanceof EtcdLeaseInvalidError)) throw unavailable(`putting ${k}`, err);
          // The lease expired before its loss was noticed (a keep-alive came too late): a caller waits for the new
          // lease of the recovery (bounded) and puts the key on it, rather than failing.
          const recovered = await Promise.race([recover().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), leaseRecoveryWaitMs).unref())]);
          if (!recovered) throw unavailable(`putting ${k}`, err);
          await lease!.put(k).value(v).catch((again: unknown) => {
            throw unavailable(`putting ${k}`, again);
          });
        }
      },
      delete: async (k, ifValue) => {
        if (ifValue === undefined || attached.get(k) === ifValue) attached.delete(k);
        const deleting = ifValue === undefined ? this.client.delete().key(k) : this.client.if(k, "Value", "==", ifValue).then(this.client.delete().key(k)).commit();
        await Promise.resolve(deleting).catch((err: unknown) => {
          throw unavailable(`deleting ${k}`, err);
        });
      },
      revoke: async () => {
        if (done) return;
        done = true;
        this.closers.delete(close);
        await lease?.revoke().catch((err: unknown) => {
          throw unavailable(`revoking ${key}`, err);
        });
      },
      release: () => {
        done = true;
        this.closers.delete(close);
        lease?.release();
      },
    };
    const close = () => registration.revoke();
    this.closers.add(close);
    return registration;
  }

  async watch(prefix: string): Promise<PrefixView> {
    const state = new ViewState();
    let watcher: Watcher | undefined;
    let closed = false;

    const listThenWatch = async (): Promise<void> => {
      const res = await this.client.getAll().prefix(prefix).exec();
      const listing = new Map<string, string>();
      for (const kv of res.kvs) listing.set(kv.key.toString(), kv.value.toString());
      state.reconcile(listing);
      const next = await this.client
        .watch()
        .prefix(prefix)
        .startRevision((BigInt(res.header.revision) + 1n).toString())
        .create();
      next.on("put", (kv) => state.apply({ type: "put", key: kv.key.toString(), value: kv.value.toString() }));
      next.on("delete", (kv) => state.apply({ type: "delete", key: kv.key.toString() }));
      // etcd3 resumes a watch across reconnects by itself; an `error` means etcd cancelled it (e.g. the revision
      // was compacted) and the watcher is gone: list again and watch from the new revision.
      next.on("error", () => void relist());
      watcher = next;
    };
    const relist = async (): Promise<void> => {
      for (let attempt = 1; !closed; attempt++) {
        try {
          await watcher?.cancel().catch(() => {});
          await listThenWatch();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, regrantDelayMs(attempt)));
        }
      }
    };

    try {
      await listThenWatch();
    } catch (err) {
      throw unavailable(`watching ${prefix}`, err);
    }
    const close = async () => {
      closed = true;
      this.closers.delete(close);
      await watcher?.cancel().catch(() => {});
    };
    this.closers.add(close);
    return { entries: () => state.map, subscribe: (l) => state.subscribe(l), close };
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.closers].map((c) => c()));
    this.root.close();
  }
}

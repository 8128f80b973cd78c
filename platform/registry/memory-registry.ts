import {
  encodeInstance,
  instanceKey,
  ViewState,
  type PrefixView,
  type RegisterOptions,
  type Registration,
  type Registry,
  type ServiceInstance,
} from "./registry.js";

interface Lease {
  id: string;
  ttlMs: number;
  keys: Set<string>;
  expiry: NodeJS.Timeout;
  keepalive: NodeJS.Timeout | undefined;
  onLost: () => void;
}

/**
 * The in-memory Registry for all-in-one mode and unit tests: leases expire after their TTL unless renewed
 * (every TTL/3, as etcd3 does), and a lost lease is re-granted with every key put again.
 */
export class MemoryRegistry implements Registry {
  private readonly store = new Map<string, { value: string; lease: string | undefined }>();
  private readonly leases = new Map<string, Lease>();
  private readonly views = new Set<{ prefix: string; state: ViewState }>();
  private nextLease = 1;

  private set(key: string, value: string, lease: string | undefined): void {
    const old = this.store.get(key);
    if (old?.lease !== undefined && old.lease !== lease) this.leases.get(old.lease)?.keys.delete(key);
    this.store.set(key, { value, lease });
    if (lease !== undefined) this.leases.get(lease)?.keys.add(key);
    for (const view of this.views) if (key.startsWith(view.prefix)) view.state.apply({ type: "put", key, value });
  }

  private remove(key: string): void {
    const old = this.store.get(key);
    if (old === undefined) return;
    if (old.lease !== undefined) this.leases.get(old.lease)?.keys.delete(key);
    this.store.delete(key);
    for (const view of this.views) if (key.startsWith(view.prefix)) view.state.apply({ type: "delete", key });
  }

  private grant(ttlMs: number, onLost: () => void): Lease {
    const id = String(this.nextLease++);
    const lease: Lease = {
      id,
      ttlMs,
      keys: new Set(),
      expiry: setTimeout(() => this.expire(id, true), ttlMs),
      keepalive: undefined,
      onLost,
    };
    lease.expiry.unref();
    lease.keepalive = setInterval(() => lease.expiry.refresh(), Math.max(1, Math.floor(ttlMs / 3)));
    lease.keepalive.unref();
    this.leases.set(id, lease);
    return lease;
  }

  private expire(id: string, lost: boolean): void {
    const lease = this.leases.get(id);
    if (lease === undefined) return;
    clearTimeout(lease.expiry);
    clearInterval(lease.keepalive);
    this.leases.delete(id);
    for (const key of [...lease.keys]) this.remove(key);
    if (lost) lease.onLost();
  }

  /** Ends a lease as if the registry had expired it (the test hook etcd offers through LeaseRevoke). */
  revokeLease(id: string): void {
    this.expire(id, true);
  }

  async register(instance: ServiceInstance, options: RegisterOptions = {}): Promise<Registration> {
    const key = instanceKey(instance.service, instance.instanceId);
    const value = encodeInstance(instance);
    const ttlMs = (options.ttlSeconds ?? 90) * 1000;
    const attached = new Map<string, string>();
    let done = false;
    const open = (): Lease => {
      const lease = this.grant(ttlMs, () => {
        if (done) return;
        current = open();
        options.onRenewed?.();
      });
      this.set(key, value, lease.id);
      for (const [k, v] of attached) this.set(k, v, lease.id);
      return lease;
    };
    let current = open();
    return {
      key,
      leaseId: () => current.id,
      put: async (k, v) => {
        attached.set(k, v);
        this.set(k, v, current.id);
      },
      delete: async (k, ifValue) => {
        if (ifValue !== undefined && this.store.get(k)?.value !== ifValue) return;
        attached.delete(k);
        this.remove(k);
      },
      revoke: async () => {
        done = true;
        this.expire(current.id, false);
      },
      release: () => {
        done = true;
        clearInterval(current.keepalive);
      },
    };
  }

  async get(key: string): Promise<string | undefined> {
    return this.store.get(key)?.value;
  }

  async list(prefix: string): Promise<Map<string, string>> {
    return new Map([...this.store].filter(([key]) => key.startsWith(prefix)).map(([key, { value }]) => [key, value]));
  }

  async watch(prefix: string): Promise<PrefixView> {
    const state = new ViewState();
    const view = { prefix, state };
    for (const [key, { value }] of this.store) if (key.startsWith(prefix)) state.map.set(key, value);
    this.views.add(view);
    return {
      entries: () => state.map,
      subscribe: (listener) => state.subscribe(listener),
      close: async () => void this.views.delete(view),
    };
  }

  async close(): Promise<void> {
    for (const id of [...this.leases.keys()]) this.expire(id, false);
    this.views.clear();
  }
}

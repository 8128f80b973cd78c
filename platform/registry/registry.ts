/** One running instance of a service, as other services find it (DESIGN.md §5 `/im/services/<service>/<instanceId>`). */
export interface ServiceInstance {
  readonly service: string;
  readonly instanceId: string;
  /** host:port where the instance serves RPCs. */
  readonly addr: string;
  readonly version: string;
  /** Relative share of traffic for weighted balancing. */
  readonly weight: number;
}

/** Options of Registry.register. */
export interface RegisterOptions {
  /** Lease TTL; the instance disappears this long after its process stops renewing (default 90 s). */
  readonly ttlSeconds?: number;
  /** Called when the lease was lost and a new one has been granted with every key put again. */
  readonly onRenewed?: () => void;
  /** Called when re-granting after a loss failed; it is retried with jittered backoff. */
  readonly onError?: (err: unknown) => void;
}

/**
 * An instance's registration: a lease holding the instance key and any keys attached to it (user routes),
 * so that when the process dies, everything it announced vanishes together when the lease expires.
 */
export interface Registration {
  /** The instance key. */
  readonly key: string;
  /** The lease currently holding the keys (changes after a loss is recovered). */
  leaseId(): string;
  /** Puts a key that lives and dies with this registration. */
  put(key: string, value: string): Promise<void>;
  /**
   * Deletes an attached key; with `ifValue`, only while it still holds that value, so a key another instance has
   * taken over since (a device that reconnected through another gateway) is left alone.
   */
  delete(key: string, ifValue?: string): Promise<void>;
  /** Deregisters: the lease is revoked, so the instance key and every attached key vanish at once. */
  revoke(): Promise<void>;
  /** Stops renewing without revoking, as a killed process would: the keys vanish when the TTL runs out. */
  release(): void;
}

/** A change seen by a prefix view. */
export type ViewEvent = { readonly type: "put"; readonly key: string; readonly value: string } | { readonly type: "delete"; readonly key: string };

/**
 * The current contents of a key prefix, kept up to date by a watch: callers read it without a round trip
 * to the registry. It survives registry outages (serving the last known state) and reconciles afterwards.
 */
export interface PrefixView {
  entries(): ReadonlyMap<string, string>;
  /** Calls the listener on every change until the returned function is called. */
  subscribe(listener: (event: ViewEvent) => void): () => void;
  close(): Promise<void>;
}

/** The service registry port: instances under leases, keys attached to them, and watched prefixes. */
export interface Registry {
  register(instance: ServiceInstance, options?: RegisterOptions): Promise<Registration>;
  /** Lists the prefix and follows it from the listed revision on. */
  watch(prefix: string): Promise<PrefixView>;
  /** Reads one key (undefined when absent). */
  get(key: string): Promise<string | undefined>;
  /** Reads every key under a prefix now (a linearizable read, unlike a view, which may lag behind writes). */
  list(prefix: string): Promise<Map<string, string>>;
  close(): Promise<void>;
}

/** The registry key of an instance. */
export function instanceKey(service: string, instanceId: string): string {
  return `/im/services/${service}/${instanceId}`;
}

/** The value stored under an instance key. */
export function encodeInstance(instance: ServiceInstance): string {
  return JSON.stringify({ addr: instance.addr, version: instance.version, weight: instance.weight });
}

/** Reads an instance back from its key and value; undefined for a key or value that is not an instance. */
export function decodeInstance(key: string, value: string): ServiceInstance | undefined {
  const match = /^\/im\/services\/([^/]+)\/([^/]+)$/.exec(key);
  if (match === null) return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<ServiceInstance>;
    if (typeof parsed.addr !== "string") return undefined;
    return {
      service: match[1]!,
      instanceId: match[2]!,
      addr: parsed.addr,
      version: typeof parsed.version === "string" ? parsed.version : "",
      weight: typeof parsed.weight === "number" && parsed.weight > 0 ? parsed.weight : 1,
    };
  } catch {
    return undefined;
  }
}

/** Jittered exponential backoff for re-granting a lost lease: up to 100 ms doubling to 10 s. */
export function regrantDelayMs(attempt: number): number {
  return Math.floor((0.5 + Math.random() / 2) * Math.min(10_000, 100 * 2 ** Math.min(attempt, 10)));
}

/** Keeps a view's listeners and map; both adapters share it so they notify the same way. */
export class ViewState {
  readonly map = new Map<string, string>();
  private readonly listeners = new Set<(event: ViewEvent) => void>();

  apply(event: ViewEvent): void {
    if (event.type === "put") {
      if (this.map.get(event.key) === event.value) return;
      this.map.set(event.key, event.value);
    } else if (!this.map.delete(event.key)) {
      return;
    }
    for (const listener of this.listeners) listener(event);
  }

  /** Replaces the contents with a fresh listing, emitting only the differences. */
  reconcile(listing: ReadonlyMap<string, string>): void {
    for (const key of [...this.map.keys()]) if (!listing.has(key)) this.apply({ type: "delete", key });
    for (const [key, value] of listing) this.apply({ type: "put", key, value });
  }

  subscribe(listener: (event: ViewEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

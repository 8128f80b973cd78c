import { decodeInstance, type PrefixView, type Registry, type ServiceInstance } from "../platform/registry/registry.js";

/**
 * The instances of every RPC service, kept current by a registry watch, so choosing an instance costs no
 * registry round trip. Instances register under their RPC service's full name (`/im/services/<pkg.Service>/<id>`).
 */
export class ServiceDirectory {
  private readonly byService = new Map<string, Map<string, ServiceInstance>>();
  private readonly listeners = new Set<(service: string) => void>();
  private readonly unsubscribe: () => void;

  private constructor(private readonly view: PrefixView) {
    for (const [key, value] of view.entries()) this.put(key, value);
    this.unsubscribe = view.subscribe((event) => {
      if (event.type === "put") this.put(event.key, event.value);
      else this.remove(event.key);
    });
  }

  /** Lists and watches `/im/services/` in the registry. */
  static async open(registry: Registry): Promise<ServiceDirectory> {
    return new ServiceDirectory(await registry.watch("/im/services/"));
  }

  private put(key: string, value: string): void {
    const instance = decodeInstance(key, value);
    if (instance === undefined) return;
    let map = this.byService.get(instance.service);
    if (map === undefined) {
      map = new Map();
      this.byService.set(instance.service, map);
    }
    map.set(instance.instanceId, instance);
    for (const l of this.listeners) l(instance.service);
  }

  private remove(key: string): void {
    const [, , , service, id] = key.split("/");
    if (service === undefined || id === undefined) return;
    if (this.byService.get(service)?.delete(id)) for (const l of this.listeners) l(service);
  }

  /** The registered instances of an RPC service (by its full name, e.g. im.msg.v1.MsgService). */
  instances(service: string): ServiceInstance[] {
    return [...(this.byService.get(service)?.values() ?? [])];
  }

  /** Calls the listener with the service name whenever its instances change. */
  subscribe(listener: (service: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await this.view.close();
  }
}

import type { MessageInitShape } from "@bufbuild/protobuf";
import { PushService, type KickSchema } from "../gen/im/gateway/v1/gateway_pb.js";
import type { PrefixView, Registry } from "../platform/registry/registry.js";
import type { MeshClients } from "./service-client.js";

/** Where one device of a user is connected: the gateway instance holding its stream (DESIGN.md §3 Connect). */
export interface Route {
  readonly appId: string;
  readonly userId: string;
  readonly deviceId: string;
  /** The gateway's instance id, which its PushService is registered under. */
  readonly gatewayId: string;
  /** When the stream opened (ms since the epoch); the newest route of a device wins. */
  readonly since: number;
}

const prefix = "/im/routes/";

/** The etcd key of a device's route: `/im/routes/<app>/<user>/<device>`. */
export function routeKey(appId: string, userId: string, deviceId: string): string {
  return `${prefix}${appId}/${userId}/${encodeURIComponent(deviceId)}`;
}

/**
 * The user's connected devices read from the registry now, for a check that must not miss a route written a moment
 * ago (the watch-fed RouteTable may lag behind).
 */
export async function readRoutes(registry: Registry, appId: string, userId: string): Promise<Route[]> {
  const entries = await registry.list(`${prefix}${appId}/${userId}/`);
  return [...entries].flatMap(([key, value]) => decodeRoute(key, value) ?? []);
}

/** The value stored under a route key. */
export function encodeRoute(route: Route): string {
  return JSON.stringify({ gatewayId: route.gatewayId, since: route.since });
}

/** The route under a key, or undefined when the key or value is not one. */
export function decodeRoute(key: string, value: string): Route | undefined {
  const parts = key.slice(prefix.length).split("/");
  if (parts.length !== 3) return undefined;
  try {
    const v = JSON.parse(value) as { gatewayId?: unknown; since?: unknown };
    if (typeof v.gatewayId !== "string" || typeof v.since !== "number") return undefined;
    return { appId: parts[0]!, userId: parts[1]!, deviceId: decodeURIComponent(parts[2]!), gatewayId: v.gatewayId, since: v.since };
  } catch {
    return undefined;
  }
}

/**
 * Every user's connected devices, kept current by a registry watch on `/im/routes/`, so routing a message costs
 * no registry round trip (DESIGN.md §3 step 6). Routes live on their gateway's lease: a dead gateway's routes
 * vanish with it.
 */
export class RouteTable {
  private readonly byUser = new Map<string, Map<string, Route>>();
  private readonly listeners = new Set<(route: Route, online: boolean) => void>();
  private readonly unsubscribe: () => void;

  private constructor(private readonly view: PrefixView) {
    for (const [key, value] of view.entries()) this.put(key, value);
    this.unsubscribe = view.subscribe((event) => (event.type === "put" ? this.put(event.key, event.value) : this.remove(event.key)));
  }

  /** Lists and watches the routes. */
  static async open(registry: Registry): Promise<RouteTable> {
    return new RouteTable(await registry.watch(prefix));
  }

  private put(key: string, value: string): void {
    const route = decodeRoute(key, value);
    if (route === undefined) return;
    const userKey = `${route.appId}/${route.userId}`;
    let devices = this.byUser.get(userKey);
    if (devices === undefined) this.byUser.set(userKey, (devices = new Map()));
    devices.set(route.deviceId, route);
    for (const l of this.listeners) l(route, true);
  }

  private remove(key: string): void {
    const route = decodeRoute(key, JSON.stringify({ gatewayId: "", since: 0 }));
    if (route === undefined) return;
    const userKey = `${route.appId}/${route.userId}`;
    const devices = this.byUser.get(userKey);
    const gone = devices?.get(route.deviceId);
    if (gone === undefined) return;
    devices!.delete(route.deviceId);
    if (devices!.size === 0) this.byUser.delete(userKey);
    for (const l of this.listeners) l(gone, false);
  }

  /** The user's connected devices. */
  devices(appId: string, userId: string): Route[] {
    return [...(this.byUser.get(`${appId}/${userId}`)?.values() ?? [])];
  }

  /** Calls the listener whenever a device connects (true) or its route goes (false). */
  subscribe(listener: (route: Route, online: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await this.view.close();
  }
}

/**
 * Closes a device's stream wherever it is: reads its route and asks that gateway to kick it. False when the device
 * has no stream; `exceptGateway` skips a route pointing at the caller itself.
 */
export async function kickDevice(
  registry: Registry,
  clients: MeshClients,
  device: { appId: string; userId: string; deviceId: string },
  kick: MessageInitShape<typeof KickSchema>,
  exceptGateway?: string,
): Promise<boolean> {
  const key = routeKey(device.appId, device.userId, device.deviceId);
  const route = decodeRoute(key, (await registry.get(key)) ?? "");
  if (route === undefined || route.gatewayId === exceptGateway) return false;
  const res = await clients.client(PushService, { instanceId: route.gatewayId }).kick({ device, kick }, { timeoutMs: 2000 });
  return res.kicked;
}

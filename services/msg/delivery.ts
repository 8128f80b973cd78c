import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { PushService, ServerFrameSchema, type DeliverySchema } from "../../gen/im/gateway/v1/gateway_pb.js";
import { OfflineDeliverySchema, type Message } from "../../gen/im/msg/v1/msg_pb.js";
import { readRoutes, type Route, type RouteTable } from "../../mesh/routes.js";
import type { MeshClients } from "../../mesh/service-client.js";
import type { Bus } from "../../platform/bus/bus.js";
import type { Registry } from "../../platform/registry/registry.js";

/** A frame for some users, except one device (the sender's own, which already has its send result). */
export interface Outgoing {
  readonly appId: string;
  readonly userIds: readonly string[];
  readonly frame: MessageInitShape<typeof ServerFrameSchema>;
  readonly exceptDevice?: { readonly userId: string; readonly deviceId: string };
  /** Messages go to the offline inbox of users with no device online; receipts and events do not. */
  readonly offlineMessage?: Message;
}

type PendingDelivery = MessageInitShape<typeof DeliverySchema>;

/** PushRequest takes at most 10,000 deliveries; a delivery lists at most this many devices. */
const maxDeliveriesPerPush = 5_000;
const maxDevicesPerDelivery = 1_000;

/** Per gateway instance: the deliveries of one Push, and the messages among them keyed by user/device/msg id. */
type GatewayBatches = Map<string, { deliveries: PendingDelivery[]; offline: Map<string, Outgoing & { userId: string }> }>;

/**
 * Delivers frames to connected devices (DESIGN.md §3 step 6): devices are looked up in the watch-fed route table,
 * deliveries are grouped per gateway and sent as one Push batch per gateway per tick, and a message for a user
 * with no device online (or whose gateway did not have the stream any more) goes to the `offline_msg` topic.
 */
export class Delivery {
  private readonly perGateway: GatewayBatches = new Map();
  private scheduled = false;

  constructor(
    private readonly deps: { routes: RouteTable; registry: Registry; clients: MeshClients; bus: Bus; logger: Logger },
  ) {}

  /** Queues the frame; it is handed to the gateways' batches on the next tick (delivery itself is asynchronous). */
  send(out: Outgoing): void {
    const offline = this.route(out, this.perGateway);
    if (offline.length > 0) void this.toOffline(out.appId, offline).catch((err: unknown) => {
      // The message is stored; the device catches up by sync when it reconnects.
      this.deps.logger.warn({ err: String(err), count: offline.length }, "could not queue offline deliveries");
    });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  /**
   * Delivers now and resolves once every gateway answered and every offline delivery is durable on the bus; rejects
   * when an offline delivery could not be queued, so a fan-out worker retries the batch instead of losing it.
   */
  async deliverNow(outs: readonly Outgoing[]): Promise<{ pushedDevices: number; offlineUsers: number }> {
    const batches: GatewayBatches = new Map();
    let offlineUsers = 0;
    const offline: Promise<void>[] = [];
    for (const out of outs) {
      const items = this.route(out, batches);
      offlineUsers += items.length;
      if (items.length > 0) offline.push(this.toOffline(out.appId, items));
    }
    const pushedDevices = [...batches.values()].reduce((n, b) => n + b.deliveries.reduce((k, d) => k + (d.devices?.length ?? 0), 0), 0);
    const late = await this.pushAll(batches);
    await Promise.all([...offline, ...late]);
    return { pushedDevices, offlineUsers };
  }

  /**
   * Pushes offline inbox entries, just written, to their users' devices that are connected now. Such a device
   * fetched its inbox before the entries were written (it connected while they were on their way, and the route
   * table that routed them may still show its previous gateway), so without this it would miss them until its next
   * connection. Routes are read from the registry after the write, never from the table. Best effort: what is not
   * pushed stays in the inbox; a device that gets an entry twice drops the copy by its seq.
   */
  async pushInboxed(items: readonly { appId: string; userId: string; message: Message }[]): Promise<void> {
    const users = new Map(items.map(({ appId, userId }) => [`${appId}/${userId}`, { appId, userId }]));
    const fresh = new Map<string, Route[]>(await Promise.all([...users].map(async ([key, u]) => [key, await readRoutes(this.deps.registry, u.appId, u.userId)] as const)));
    const batches: GatewayBatches = new Map();
    for (const { appId, userId, message } of items) {
      this.route({ appId, userIds: [userId], frame: messageFrame(message) }, batches, (a, u) => fresh.get(`${a}/${u}`) ?? []);
    }
    if (batches.size > 0) await this.pushAll(batches);
  }

  /**
   * Adds the frame to its gateways' batches, finding devices in the route table unless `devicesOf` is given; returns
   * the users with no device online, for the offline inbox.
   */
  private route(out: Outgoing, batches: GatewayBatches, devicesOf = (appId: string, userId: string) => this.deps.routes.devices(appId, userId)): { userId: string; message: Message }[] {
    const offline: { userId: string; message: Message }[] = [];
    for (const userId of out.userIds) {
      const devices = devicesOf(out.appId, userId).filter((d) => !(out.exceptDevice?.userId === userId && out.exceptDevice.deviceId === d.deviceId));
      if (devices.length === 0) {
        const isOwnOtherDevice = out.exceptDevice?.userId === userId;
        if (out.offlineMessage && !isOwnOtherDevice) offline.push({ userId, message: out.offlineMessage });
        continue;
      }
      for (const d of devices) {
        let batch = batches.get(d.gatewayId);
        if (batch === undefined) batches.set(d.gatewayId, (batch = { deliveries: [], offline: new Map() }));
        // One delivery per frame and gateway, listing every device there: the frame is encoded once per gateway.
        let delivery = batch.deliveries[batch.deliveries.length - 1];
        if (delivery?.frame !== out.frame || (delivery.devices?.length ?? 0) >= maxDevicesPerDelivery) {
          batch.deliveries.push((delivery = { devices: [], frame: out.frame }));
        }
        (delivery.devices as { appId: string; userId: string; deviceId: string }[]).push({ appId: out.appId, userId, deviceId: d.deviceId });
        if (out.offlineMessage) batch.offline.set(`${userId}/${d.deviceId}/${out.offlineMessage.msgId}`, { ...out, userId });
      }
    }
    return offline;
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batches = new Map(this.perGateway);
    this.perGateway.clear();
    const late = await this.pushAll(batches);
    await Promise.all(late).catch((err: unknown) => this.deps.logger.warn({ err: String(err) }, "could not queue offline deliveries"));
  }

  /**
   * Sends one Push per gateway; what a gateway did not have a stream for (or every delivery of a gateway that
   * failed) goes to the offline inbox. Returns the offline publishes, for the caller to await or log.
   */
  private async pushAll(batches: GatewayBatches): Promise<Promise<void>[]> {
    const late: Promise<void>[] = [];
    await Promise.all(
      [...batches].map(async ([gatewayId, batch]) => {
        let notConnected: { appId: string; userId: string; deviceId: string }[];
        try {
          const push = this.deps.clients.client(PushService, { instanceId: gatewayId });
          notConnected = [];
          for (let i = 0; i < batch.deliveries.length; i += maxDeliveriesPerPush) {
            const res = await push.push({ deliveries: batch.deliveries.slice(i, i + maxDeliveriesPerPush) });
            notConnected.push(...res.notConnected);
          }
        } catch (err) {
          this.deps.logger.warn({ gatewayId, err: String(err) }, "push failed; the messages wait in the offline inbox");
          notConnected = batch.deliveries.flatMap((d) => d.devices ?? []).map((d) => ({ appId: d.appId ?? "", userId: d.userId ?? "", deviceId: d.deviceId ?? "" }));
        }
        const missed = new Set(notConnected.map((d) => `${d.userId}/${d.deviceId}/`));
        const offline: { userId: string; message: Message }[] = [];
        for (const [key, out] of batch.offline) {
          if (out.offlineMessage && missed.has(key.slice(0, key.lastIndexOf("/") + 1))) offline.push({ userId: out.userId, message: out.offlineMessage });
        }
        if (offline.length > 0) late.push(this.toOffline(notConnected[0]!.appId, offline));
      }),
    );
    return late;
  }

  private async toOffline(appId: string, items: { userId: string; message: Message }[]): Promise<void> {
    await this.deps.bus.publish(
      "offline_msg",
      items.map(({ userId, message }) => ({ key: userId, value: toBinary(OfflineDeliverySchema, create(OfflineDeliverySchema, { appId, userId, message })) })),
    );
  }
}

/** A ServerFrame carrying a message, as Push sends it. */
export function messageFrame(message: Message): MessageInitShape<typeof ServerFrameSchema> {
  return { body: { case: "message", value: message } };
}

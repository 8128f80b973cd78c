import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { PushService, ServerFrameSchema, type DeliverySchema } from "../../gen/im/gateway/v1/gateway_pb.js";
import { OfflineDeliverySchema, type Message } from "../../gen/im/msg/v1/msg_pb.js";
import type { RouteTable } from "../../mesh/routes.js";
import type { MeshClients } from "../../mesh/service-client.js";
import type { Bus } from "../../platform/bus/bus.js";

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

/**
 * Delivers frames to connected devices (DESIGN.md §3 step 6): devices are looked up in the watch-fed route table,
 * deliveries are grouped per gateway and sent as one Push batch per gateway per tick, and a message for a user
 * with no device online (or whose gateway did not have the stream any more) goes to the `offline_msg` topic.
 */
export class Delivery {
  private readonly perGateway = new Map<string, { deliveries: PendingDelivery[]; offline: Map<string, Outgoing & { userId: string }> }>();
  private scheduled = false;

  constructor(
    private readonly deps: { routes: RouteTable; clients: MeshClients; bus: Bus; logger: Logger },
  ) {}

  /** Queues the frame; resolves once it is handed to the gateways' batches (delivery itself is asynchronous). */
  send(out: Outgoing): void {
    const offline: { userId: string; message: Message }[] = [];
    for (const userId of out.userIds) {
      const devices = this.deps.routes.devices(out.appId, userId).filter((d) => !(out.exceptDevice?.userId === userId && out.exceptDevice.deviceId === d.deviceId));
      if (devices.length === 0) {
        const isOwnOtherDevice = out.exceptDevice?.userId === userId;
        if (out.offlineMessage && !isOwnOtherDevice) offline.push({ userId, message: out.offlineMessage });
        continue;
      }
      for (const d of devices) {
        let batch = this.perGateway.get(d.gatewayId);
        if (batch === undefined) this.perGateway.set(d.gatewayId, (batch = { deliveries: [], offline: new Map() }));
        batch.deliveries.push({ devices: [{ appId: out.appId, userId, deviceId: d.deviceId }], frame: out.frame });
        if (out.offlineMessage) batch.offline.set(`${userId}/${d.deviceId}/${out.offlineMessage.msgId}`, { ...out, userId });
      }
    }
    if (offline.length > 0) void this.toOffline(out.appId, offline);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batches = [...this.perGateway];
    this.perGateway.clear();
    await Promise.all(
      batches.map(async ([gatewayId, batch]) => {
        let notConnected: { appId: string; userId: string; deviceId: string }[];
        try {
          const res = await this.deps.clients.client(PushService, { instanceId: gatewayId }).push({ deliveries: batch.deliveries });
          notConnected = res.notConnected;
        } catch (err) {
          this.deps.logger.warn({ gatewayId, err: String(err) }, "push failed; the messages go to the offline inbox");
          notConnected = batch.deliveries.flatMap((d) => d.devices ?? []).map((d) => ({ appId: d.appId ?? "", userId: d.userId ?? "", deviceId: d.deviceId ?? "" }));
        }
        const offline: { userId: string; message: Message }[] = [];
        for (const d of notConnected) {
          for (const [key, out] of batch.offline) {
            if (key.startsWith(`${d.userId}/${d.deviceId}/`) && out.offlineMessage) offline.push({ userId: d.userId, message: out.offlineMessage });
          }
        }
        if (offline.length > 0) await this.toOffline(notConnected[0]!.appId, offline);
      }),
    );
  }

  private async toOffline(appId: string, items: { userId: string; message: Message }[]): Promise<void> {
    try {
      await this.deps.bus.publish(
        "offline_msg",
        items.map(({ userId, message }) => ({ key: userId, value: toBinary(OfflineDeliverySchema, create(OfflineDeliverySchema, { appId, userId, message })) })),
      );
    } catch (err) {
      // The message is stored; the device catches up by sync when it reconnects.
      this.deps.logger.warn({ err: String(err), count: items.length }, "could not queue offline deliveries");
    }
  }
}

/** A ServerFrame carrying a message, as Push sends it. */
export function messageFrame(message: Message): MessageInitShape<typeof ServerFrameSchema> {
  return { body: { case: "message", value: message } };
}

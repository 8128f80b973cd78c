import { toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { MessageSchema, OfflineDeliverySchema } from "../../gen/im/msg/v1/msg_pb.js";
import type { BatchHandler } from "../../platform/bus/bus.js";
import { decodeRecord, PoisonRecordError } from "../../platform/bus/poison-record.js";
import type { Delivery } from "./delivery.js";
import type { MessageStore } from "./message-store.js";

/**
 * Writes `offline_msg` records into the offline inbox (the consumer's handler), a batch at a time and idempotently,
 * then pushes them to any of their devices that connected meanwhile (see Delivery.pushInboxed).
 */
export function createOfflineWriter(store: MessageStore, delivery: Delivery, logger: Logger): BatchHandler {
  return async (records) => {
    const items = records.map((r) => {
      const d = decodeRecord(OfflineDeliverySchema, r);
      if (d.message === undefined) throw new PoisonRecordError(r, "offline_msg record without a message");
      return { appId: d.appId, userId: d.userId, message: d.message, timestamp: r.timestamp };
    });
    await store.storeOffline(
      items.map(({ appId, userId, message: m, timestamp }) => ({ appId, userId, conversationId: m.conversationId, seq: Number(m.seq), msgId: m.msgId, payload: toBinary(MessageSchema, m), createdAt: m.createdAt ? timestampDate(m.createdAt) : new Date(timestamp) })),
    );
    await delivery.pushInboxed(items).catch((err: unknown) =>
      logger.warn({ err }, "pushing inbox entries to reconnected devices failed; they wait for the next connection"),
    );
  };
}

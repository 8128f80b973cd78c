import { MsgInternalService, MsgService } from "../../gen/im/msg/v1/msg_pb.js";
import { RouteTable } from "../../mesh/routes.js";
import { mount } from "../../mesh/server.js";
import { RateLimiter } from "../../platform/rate-limiter.js";
import type { Runtime, ServiceModule } from "../runtime.js";
import { Delivery } from "./delivery.js";
import { MemoryMessageStore } from "./memory-message-store.js";
import type { MessageStore } from "./message-store.js";
import { SqlMessageStore } from "./sql-message-store.js";
import { createMsgServices } from "./msg-service.js";
import { createOfflineWriter } from "./offline-writer.js";
import { Sequencer } from "./sequencer.js";

/** Offline inbox entries are kept 7 days (DESIGN.md §4); the purge runs hourly. */
const offlineRetentionMs = 7 * 24 * 3_600_000;

/** The message store of the process's adapters and a Delivery on a watch-fed route table (closed at stop). */
export async function openDelivery(rt: Runtime): Promise<{ store: MessageStore; delivery: Delivery }> {
  const store = rt.store.kind === "sql" ? new SqlMessageStore(rt.store.db) : new MemoryMessageStore(rt.store.tables);
  const routes = await RouteTable.open(rt.registry);
  rt.onStop(() => routes.close());
  return { store, delivery: new Delivery({ routes, registry: rt.registry, clients: rt.clients, bus: rt.bus, logger: rt.logger }) };
}

/**
 * The msg service: conversations, messages, seqs, read state and the offline inbox. It also consumes
 * `offline_msg` into the inbox and purges entries older than 7 days.
 */
export const msgModule: ServiceModule = {
  name: "msg",
  async build(rt) {
    const { store, delivery } = await openDelivery(rt);
    const limiter = new RateLimiter(rt.kv, { onSharedError: (err) => rt.logger.warn({ err }, "the shared send limit could not be checked; local limits apply") });
    const sendLimits = { limiter, perUser: rt.config.limits.sendPerUser, perApp: rt.config.limits.sendPerApp };
    const services = createMsgServices({ store, kv: rt.kv, sequencer: new Sequencer(rt.kv, store), delivery, clients: rt.clients, bus: rt.bus, editWindowMs: rt.config.msgEditWindowSeconds * 1000, sendLimits });
    const writeOffline = createOfflineWriter(store, delivery, rt.logger);
    const subscription = await rt.bus.subscribe({
      groupId: "msg-offline-inbox",
      topic: "offline_msg",
      handler: writeOffline,
      onError: (err, records, attempt) => rt.logger.warn({ err, records: records.length, attempt }, "writing the offline inbox failed; retrying"),
    });
    rt.onStop(() => subscription.stop());
    const purge = setInterval(() => {
      store.purgeOffline(new Date(Date.now() - offlineRetentionMs)).then(
        (n) => n > 0 && rt.logger.info({ purged: n }, "purged old offline inbox entries"),
        (err: unknown) => rt.logger.warn({ err: String(err) }, "offline inbox purge failed"),
      );
    }, 3_600_000);
    purge.unref();
    rt.onStop(async () => clearInterval(purge));
    return [mount(MsgService, services.msg), mount(MsgInternalService, services.internal)];
  },
};

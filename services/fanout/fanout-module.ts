import { RouteTable } from "../../mesh/routes.js";
import type { ServiceModule } from "../runtime.js";
import { Delivery } from "../msg/delivery.js";
import { MemoryMessageStore, SqlMessageStore } from "../msg/message-store.js";
import { startFanoutWorker } from "./fanout-worker.js";

/**
 * The group fan-out workers: a `group_msg` consumer group with no RPCs of its own (its port serves health and
 * metrics). Runs as its own process in mesh mode (scale it with the partitions) and inside all-in-one.
 */
export const fanoutModule: ServiceModule = {
  name: "fanout",
  async build(rt) {
    const store = rt.store.kind === "sql" ? new SqlMessageStore(rt.store.db) : new MemoryMessageStore(rt.store.tables);
    const routes = await RouteTable.open(rt.registry);
    rt.onStop(() => routes.close());
    const delivery = new Delivery({ routes, clients: rt.clients, bus: rt.bus, logger: rt.logger });
    const worker = await startFanoutWorker({ store, delivery, bus: rt.bus, logger: rt.logger, metrics: rt.metrics, instanceId: rt.instanceId });
    rt.onStop(() => worker.stop());
    return [];
  },
};

import type { ServiceModule } from "../runtime.js";
import { openDelivery } from "../msg/msg-module.js";
import { startFanoutWorker } from "./fanout-worker.js";

/**
 * The group fan-out workers: a `group_msg` consumer group with no RPCs of its own (its port serves health and
 * metrics). Runs as its own process in mesh mode (scale it with the partitions) and inside all-in-one.
 */
export const fanoutModule: ServiceModule = {
  name: "fanout",
  async build(rt) {
    const { store, delivery } = await openDelivery(rt);
    const worker = await startFanoutWorker({ store, delivery, bus: rt.bus, logger: rt.logger, metrics: rt.metrics, instanceId: rt.instanceId, offlineInboxMaxMembers: rt.config.offlineInboxMaxMembers });
    rt.onStop(() => worker.stop());
    return [];
  },
};

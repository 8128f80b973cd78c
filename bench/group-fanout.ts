// Group fan-out: a group of M members with D devices online over two gateways (mesh mode on the real
// infrastructure), one message from the owner, timed until every online device has it. The baseline in the same
// run is a group of only the D online members: the difference is what the offline members cost (their offline_msg
// records and inbox rows).
import { runLargeGroup, type LargeGroupResult } from "../test/large-group.js";
import { startMeshDeployment } from "../test/mesh-deployment.js";
import type { BenchOptions } from "./options.js";
import { printTable, saveResult } from "./report.js";
import { benchEnv } from "./deployments.js";

/** `npm run bench -- group-fanout [--members M] [--online D]`. */
export async function groupFanoutBench(options: BenchOptions): Promise<void> {
  if (!process.env.IM_ETCD_ENDPOINTS) {
    console.log("group-fanout: needs the real infrastructure (make infra-up, then source deploy/local/env.sh)");
    return;
  }
  const members = options.groupMembers;
  const online = Math.min(options.groupOnline, members - 1);
  const rows: Record<string, string | number>[] = [];
  const mesh = await startMeshDeployment({ gateways: 2, redisDb: 12, extraEnv: { ...benchEnv, IM_LEASE_TTL_SECONDS: "30" } });
  try {
    for (const [label, size] of [["baseline: only the online members", online], ["ours", members]] as const) {
      const r: LargeGroupResult = await runLargeGroup(mesh, { members: size, online, timeoutMs: 60_000 });
      rows.push({
        run: label,
        members: r.members,
        "online devices": r.onlineDevices,
        received: r.received,
        "all received ms": r.allReceivedMs,
        "deliveries/s": r.deliveriesPerSecond,
        "group built ms": r.setupMs,
      });
    }
  } finally {
    await mesh.stop();
  }
  console.log(`\ngroup-fanout: one message to a group, two gateways, fan-out worker on Kafka${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable(rows);
  console.log(`saved ${saveResult("group-fanout", { options, rows })}`);
}

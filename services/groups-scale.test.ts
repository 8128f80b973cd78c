// A 10,000-member group with 1,000 online devices over two gateways receives a message everywhere (mesh mode on
// the real infrastructure). The time is printed, never asserted: `npm run bench -- group-fanout` measures it.
import { expect } from "chai";
import { runLargeGroup } from "../test/large-group.js";
import { startMeshDeployment, type MeshDeployment } from "../test/mesh-deployment.js";

describe("a 10,000-member group, 1,000 devices online on two gateways @infra", function () {
  this.timeout(300_000);
  let mesh: MeshDeployment;
  before(async () => {
    // A loaded 2-core machine can starve a 5 s lease's renewals; a lost lease drops the gateways' routes for a moment.
    mesh = await startMeshDeployment({ gateways: 2, extraEnv: { IM_LEASE_TTL_SECONDS: "30" } });
  });
  after(() => mesh?.stop());

  it("delivers one message to every online device", async () => {
    const r = await runLargeGroup(mesh, { members: 10_000, online: 1_000, timeoutMs: 60_000 });
    console.log(`      10,000 members, 1,000 online: group built in ${r.setupMs} ms; all online devices had the message after ${r.allReceivedMs} ms (${r.deliveriesPerSecond} deliveries/s)`);
    if (r.received < 1_000) {
      // What the services said, for the failure report.
      for (const p of [mesh.fanout, ...mesh.gateways]) console.log(p.script, p.output().split("\n").filter((l) => /"level":[456]/.test(l)).slice(-5).join("\n"));
    }
    expect(r.received).to.equal(1_000);
  });
});

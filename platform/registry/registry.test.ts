import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { eventually } from "../../test/eventually.js";
import { infraEnv } from "../../test/infra.js";
import { freePort, TestProcess } from "../../test/processes.js";
import { UnavailableError } from "../errors.js";
import { EtcdRegistry } from "./etcd-registry.js";
import { MemoryRegistry } from "./memory-registry.js";
import { instanceKey } from "./registry.js";
import { registryContract } from "./registry.contract.js";

describe("registry: memory adapter", () => {
  registryContract({
    open: async () => new MemoryRegistry(),
    revokeLease: async (registry, id) => (registry as MemoryRegistry).revokeLease(id),
  });
});

describe("registry: etcd adapter @infra", function () {
  this.timeout(30_000);
  registryContract({
    open: async () => new EtcdRegistry(infraEnv("IM_ETCD_ENDPOINTS").split(",")),
    revokeLease: async (registry, id) => {
      await (registry as EtcdRegistry).client.leaseClient.leaseRevoke({ ID: id });
    },
  });

  it("fails with UnavailableError naming etcd when no server answers", async () => {
    const port = await freePort();
    const registry = new EtcdRegistry([`http://127.0.0.1:${port}`], { callTimeoutMs: 1000 });
    try {
      const err = await registry.watch("/im/services/").catch((e: unknown) => e);
      expect(err).to.be.instanceOf(UnavailableError);
      expect((err as UnavailableError).component).to.equal("etcd");
    } finally {
      await registry.close();
    }
  });

  it("gives up a registration that failed at start, without recovery attempts behind the caller's back", async () => {
    const port = await freePort();
    const registry = new EtcdRegistry([`http://127.0.0.1:${port}`], { callTimeoutMs: 500 });
    let recoveries = 0;
    try {
      const instance = { service: "svc", instanceId: "a", addr: "127.0.0.1:1", version: "1", weight: 1 };
      const err = await registry.register(instance, { ttlSeconds: 2, onError: () => recoveries++ }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(UnavailableError);
      await new Promise((r) => setTimeout(r, 1500));
      expect(recoveries).to.equal(0);
    } finally {
      await registry.close();
    }
  });

  it("keeps its view through an etcd restart and follows changes afterwards", async function () {
    this.timeout(90_000);
    const [client, peer] = [await freePort(), await freePort()];
    const dataDir = await mkdtemp(join(tmpdir(), "im-etcd-"));
    const args = [
      "--name", "restart-test", "--data-dir", dataDir,
      "--listen-client-urls", `http://127.0.0.1:${client}`, "--advertise-client-urls", `http://127.0.0.1:${client}`,
      "--listen-peer-urls", `http://127.0.0.1:${peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
      "--initial-cluster", `restart-test=http://127.0.0.1:${peer}`,
    ];
    const etcd = new TestProcess("etcd", args, client);
    await etcd.start();
    const endpoint = [`http://127.0.0.1:${client}`];
    const registry = new EtcdRegistry(endpoint);
    const other = new EtcdRegistry(endpoint);
    try {
      const instance = { service: "svc", instanceId: "a", addr: "127.0.0.1:1", version: "1", weight: 1 };
      const reg = await registry.register(instance, { ttlSeconds: 30 });
      const view = await registry.watch("/im/services/svc/");
      expect(view.entries().size).to.equal(1);
      await etcd.stop("SIGKILL");
      await new Promise((r) => setTimeout(r, 500));
      expect(view.entries().has(instanceKey("svc", "a")), "the cache serves the last known state").to.equal(true);
      await etcd.start();
      let registered = false;
      for (let i = 0; i < 60 && !registered; i++) {
        registered = await other
          .register({ ...instance, instanceId: "b" }, { ttlSeconds: 30 })
          .then(() => true, () => false);
        if (!registered) await new Promise((r) => setTimeout(r, 500));
      }
      expect(registered).to.equal(true);
      await eventually("the view to see the new instance", () => view.entries().has(instanceKey("svc", "b")), 30_000);
      expect(view.entries().has(instanceKey("svc", "a"))).to.equal(true);
      await reg.revoke();
      await eventually("the view to see the revocation", () => !view.entries().has(instanceKey("svc", "a")), 30_000);
    } finally {
      await registry.close();
      await other.close();
      await etcd.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

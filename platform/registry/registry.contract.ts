// The behaviour every Registry adapter must show; registry.test.ts runs it against memory and etcd.
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { eventually } from "../../test/eventually.js";
import { decodeInstance, instanceKey, type PrefixView, type Registry, type ServiceInstance, type ViewEvent } from "./registry.js";

/** What the suite needs from an adapter besides the port: a way to end a lease behind the client's back. */
export interface RegistryHarness {
  open(): Promise<Registry>;
  revokeLease(registry: Registry, leaseId: string): Promise<void>;
}

/** Registers the shared Registry cases. */
export function registryContract(harness: RegistryHarness): void {
  let registry: Registry;
  let service: string;
  const views: PrefixView[] = [];
  const instance = (id: string, addr = "127.0.0.1:9000"): ServiceInstance => ({ service, instanceId: id, addr, version: "1.0.0", weight: 1 });
  const watch = async (prefix: string) => {
    const v = await registry.watch(prefix);
    views.push(v);
    return v;
  };

  beforeEach(async () => {
    registry = await harness.open();
    service = `test-${randomUUID()}`;
  });
  afterEach(async () => {
    await Promise.all(views.splice(0).map((v) => v.close()));
    await registry.close();
  });

  it("lists registered instances and follows new ones", async () => {
    await registry.register(instance("a", "127.0.0.1:9001"));
    const view = await watch(`/im/services/${service}/`);
    expect([...view.entries().keys()]).to.deep.equal([instanceKey(service, "a")]);
    const decoded = decodeInstance(instanceKey(service, "a"), view.entries().get(instanceKey(service, "a"))!);
    expect(decoded).to.deep.equal(instance("a", "127.0.0.1:9001"));
    await registry.register(instance("b", "127.0.0.1:9002"));
    await eventually("instance b", () => view.entries().has(instanceKey(service, "b")));
  });

  it("makes attached keys visible and removes them with the registration, all at once", async () => {
    const reg = await registry.register(instance("gw"));
    const routes = `/im/routes/${service}/`;
    const view = await watch(routes);
    const events: ViewEvent[] = [];
    view.subscribe((e) => events.push(e));
    await reg.put(`${routes}alice/phone`, "gw");
    await reg.put(`${routes}bob/laptop`, "gw");
    await reg.put(`${routes}bob/laptop`, "gw-2");
    await eventually("three puts", () => events.length === 3);
    expect(view.entries().get(`${routes}bob/laptop`)).to.equal("gw-2");
    await reg.delete(`${routes}alice/phone`);
    await eventually("the delete", () => !view.entries().has(`${routes}alice/phone`));
    const services = await watch(`/im/services/${service}/`);
    await reg.revoke();
    await eventually("revocation to clear everything", () => view.entries().size === 0 && services.entries().size === 0);
    expect(events.slice(-1)[0]).to.deep.equal({ type: "delete", key: `${routes}bob/laptop` });
  });

  it("lets a crashed instance's keys expire after the TTL, not before", async function () {
    this.timeout(20_000);
    const reg = await registry.register(instance("crashy"), { ttlSeconds: 2 });
    const routes = `/im/routes/${service}/`;
    await reg.put(`${routes}carol/web`, "crashy");
    const view = await watch(`/im/`);
    const mine = () => [...view.entries().keys()].filter((k) => k.includes(service));
    expect(mine()).to.have.length(2);
    const releasedAt = Date.now();
    reg.release();
    await new Promise((r) => setTimeout(r, 500));
    expect(mine(), "still within the TTL").to.have.length(2);
    await eventually("lease expiry", () => mine().length === 0, 10_000);
    expect(Date.now() - releasedAt).to.be.greaterThan(1500);
  });

  it("re-grants a lease the registry ended and puts every key again", async function () {
    this.timeout(20_000);
    let renewed = 0;
    const reg = await registry.register(instance("phoenix"), { ttlSeconds: 3, onRenewed: () => renewed++ });
    const routes = `/im/routes/${service}/`;
    await reg.put(`${routes}dave/tablet`, "phoenix");
    const view = await watch(`/im/`);
    const before = reg.leaseId();
    const gone: string[] = [];
    view.subscribe((e) => {
      if (e.type === "delete") gone.push(e.key);
    });
    await harness.revokeLease(registry, before);
    await eventually("keys to vanish", () => gone.length === 2, 10_000);
    await eventually("the lease to be re-granted", () => renewed === 1, 10_000);
    await eventually("keys to come back", () => [...view.entries().keys()].filter((k) => k.includes(service)).length === 2);
    expect(reg.leaseId()).to.not.equal(before);
    await reg.revoke();
  });

  it("puts a key on the new lease when the lease ended before the registration noticed", async function () {
    this.timeout(20_000);
    const reg = await registry.register(instance("late"), { ttlSeconds: 30 });
    const before = reg.leaseId();
    await harness.revokeLease(registry, before);
    const key = `/im/routes/${service}/erin/phone`;
    await reg.put(key, "late");
    expect(reg.leaseId()).to.not.equal(before);
    expect(await registry.get(key)).to.equal("late");
    expect(await registry.get(instanceKey(service, "late")), "the instance key is back too").to.not.equal(undefined);
    await reg.revoke();
    expect(await registry.get(key), "the key is on the current lease").to.equal(undefined);
  });

  it("misses nothing written while a watch starts (list, then watch from the next revision)", async () => {
    const reg = await registry.register(instance("busy"));
    const prefix = `/im/routes/${service}/`;
    const writes = Array.from({ length: 50 }, (_, i) => reg.put(`${prefix}u${i}/d`, String(i)));
    const view = await watch(prefix);
    await Promise.all(writes);
    await eventually("all 50 keys", () => view.entries().size === 50);
    await reg.revoke();
  });

  it("reads a key, and deletes an attached key only while it holds the value given", async () => {
    const a = await registry.register(instance("a"));
    const b = await registry.register(instance("b"));
    const key = `/im/routes/test/${service}/device`;
    expect(await registry.get(key)).to.equal(undefined);
    await a.put(key, "on-a");
    await b.put(key, "on-b");
    expect(await registry.get(key)).to.equal("on-b");
    await a.delete(key, "on-a");
    expect(await registry.get(key), "b's key survives a's stale delete").to.equal("on-b");
    await b.delete(key, "on-b");
    expect(await registry.get(key)).to.equal(undefined);
  });

  it("lists the keys under a prefix as written, without the keys beside it", async () => {
    const a = await registry.register(instance("a"));
    const prefix = `/im/routes/test/${service}/carol/`;
    expect(await registry.list(prefix)).to.deep.equal(new Map());
    await a.put(`${prefix}phone`, "gw-1");
    await a.put(`${prefix}laptop`, "gw-2");
    await a.put(`/im/routes/test/${service}/carola/phone`, "gw-3");
    expect(await registry.list(prefix)).to.deep.equal(new Map([[`${prefix}laptop`, "gw-2"], [`${prefix}phone`, "gw-1"]]));
    await a.delete(`${prefix}phone`, "gw-1");
    expect([...(await registry.list(prefix)).keys()]).to.deep.equal([`${prefix}laptop`]);
    await a.revoke();
    expect(await registry.list(prefix), "keys go with their lease").to.deep.equal(new Map());
  });

  it("stops notifying a closed view", async () => {
    const view = await registry.watch(`/im/services/${service}/`);
    let events = 0;
    view.subscribe(() => events++);
    await view.close();
    await registry.register(instance("late"));
    await new Promise((r) => setTimeout(r, 200));
    expect(events).to.equal(0);
  });
}

// The behaviour both ProfileStore implementations must show; profile-store.test.ts runs it against each.
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import type { ProfileStore } from "./profile-store.js";

/** A user row to seed, as the auth service would have created it. */
export interface SeedUser {
  appId: string;
  id: string;
  username: string;
  displayName: string;
  email?: string;
}

/** What the suite needs: a store, and a way to put users (and their app) underneath it. */
export interface ProfileHarness {
  store: ProfileStore;
  seed(users: readonly SeedUser[]): Promise<void>;
  close(): Promise<void>;
}

/** Registers the shared ProfileStore cases. */
export function profileStoreContract(open: () => Promise<ProfileHarness>): void {
  let h: ProfileHarness;
  let appId: string;
  let otherApp: string;
  const ids = { alice: randomUUID(), bob: randomUUID(), zoe: randomUUID(), ab: randomUUID(), a_b: randomUUID(), stranger: randomUUID() };

  beforeEach(async () => {
    h = await open();
    appId = randomUUID();
    otherApp = randomUUID();
    await h.seed([
      { appId, id: ids.alice, username: "alice", displayName: "Alice Liddell", email: "alice@example.com" },
      { appId, id: ids.bob, username: "bob", displayName: "Robert" },
      { appId, id: ids.zoe, username: "zoe_k", displayName: "Zoë Kravitz" },
      { appId, id: ids.ab, username: "abxy", displayName: "Ab" },
      { appId, id: ids.a_b, username: "a_b", displayName: "Underscore" },
      { appId: otherApp, id: ids.stranger, username: "alicia", displayName: "Alicia" },
    ]);
  });
  afterEach(() => h.close());

  it("gets one profile, and never another app's", async () => {
    const alice = await h.store.get(appId, ids.alice);
    expect(alice).to.include({ username: "alice", displayName: "Alice Liddell", avatarUrl: "", email: "alice@example.com" });
    expect(await h.store.get(appId, ids.stranger)).to.equal(undefined);
    expect(await h.store.get(appId, randomUUID())).to.equal(undefined);
  });

  it("batch-gets in the asked order, leaving out unknown and foreign ids", async () => {
    const profiles = await h.store.batchGet(appId, [ids.bob, randomUUID(), ids.stranger, ids.alice]);
    expect(profiles.map((p) => p.username)).to.deep.equal(["bob", "alice"]);
    expect(await h.store.batchGet(appId, [])).to.deep.equal([]);
  });

  it("updates only the given fields and moves updatedAt", async () => {
    const before = (await h.store.get(appId, ids.bob))!;
    await new Promise((r) => setTimeout(r, 5));
    const after = await h.store.update(appId, ids.bob, { avatarUrl: "https://cdn.example.com/bob.png" });
    expect(after).to.include({ displayName: "Robert", avatarUrl: "https://cdn.example.com/bob.png" });
    expect(after!.updatedAt.getTime()).to.be.greaterThan(before.updatedAt.getTime());
    expect((await h.store.update(appId, ids.bob, { displayName: "Bob" }))?.avatarUrl).to.equal("https://cdn.example.com/bob.png");
    expect(await h.store.update(appId, ids.stranger, { displayName: "x" })).to.equal(undefined);
    expect((await h.store.get(otherApp, ids.stranger))?.displayName).to.equal("Alicia");
  });

  it("searches by username or display name prefix, case- and accent-insensitively, within the app", async () => {
    const names = async (prefix: string) => (await h.store.search(appId, prefix, 20)).profiles.map((p) => p.username);
    expect(await names("ali")).to.deep.equal(["alice"]);
    expect(await names("ROB")).to.deep.equal(["bob"]);
    expect(await names("zoë")).to.deep.equal(["zoe_k"]);
    expect(await names("Zoe K")).to.deep.equal(["zoe_k"]);
    expect(await names("a_")).to.deep.equal(["a_b"]);
    expect(await names("a%")).to.deep.equal([]);
    expect(await names("nobody")).to.deep.equal([]);
  });

  it("pages through results by username", async () => {
    const first = await h.store.search(appId, "a", 2);
    expect(first.profiles.map((p) => p.username)).to.deep.equal(["a_b", "abxy"]);
    expect(first.nextAfter).to.equal("abxy");
    const second = await h.store.search(appId, "a", 2, first.nextAfter);
    expect(second.profiles.map((p) => p.username)).to.deep.equal(["alice"]);
    expect(second.nextAfter).to.equal(undefined);
  });
}

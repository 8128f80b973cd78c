// The behaviour both GroupStore adapters must show, on the demo data (the "Launch team": alice owner, bob admin,
// charlie member).
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { demo } from "../../platform/store/demo-data.js";
import { roles, type GroupStore } from "./group-store.js";

const [alice, bob, charlie, carol] = demo.users;

/** Registers the shared cases; `open` returns a store holding the demo data. */
export function groupStoreContract(open: () => Promise<{ store: GroupStore; close: () => Promise<void> }>): void {
  let store: GroupStore;
  let close: () => Promise<void>;
  beforeEach(async () => ({ store, close } = await open()));
  afterEach(() => close());

  it("creates a group once with its owner and members, scoped to its app", async () => {
    const id = randomUUID();
    const first = await store.create({ appId: demo.appId, id, name: "Book club", avatarUrl: "", ownerId: carol.id }, [alice.id, carol.id]);
    expect(first.created).to.equal(true);
    expect(first.group).to.include({ name: "Book club", ownerId: carol.id, memberCount: 2, dissolvedAt: null });
    const again = await store.create({ appId: demo.appId, id, name: "Other name", avatarUrl: "", ownerId: carol.id }, []);
    expect(again.created).to.equal(false);
    expect(again.group.name).to.equal("Book club");
    expect((await store.member(demo.appId, id, carol.id))?.role).to.equal(roles.owner);
    expect((await store.member(demo.appId, id, alice.id))?.role).to.equal(roles.member);
    expect(await store.group(randomUUID(), id)).to.equal(undefined);
    expect(await store.member(randomUUID(), id, carol.id)).to.equal(undefined);
  });

  it("adds and removes members, reporting only real changes, with an exact count", async () => {
    expect(await store.addMembers(demo.appId, demo.groupId, [carol.id, bob.id])).to.deep.equal({ added: [carol.id], memberCount: 4 });
    expect(await store.removeMembers(demo.appId, demo.groupId, [carol.id, randomUUID()])).to.deep.equal({ removed: [carol.id], memberCount: 3 });
    expect(await store.addMembers(demo.appId, randomUUID(), [carol.id])).to.equal(undefined);
    expect(await store.addMembers(randomUUID(), demo.groupId, [carol.id]), "another app's group").to.equal(undefined);
  });

  it("keeps member_count exact under concurrent joins and leaves", async () => {
    const people = Array.from({ length: 40 }, () => randomUUID());
    await Promise.all(people.map((u) => store.addMembers(demo.appId, demo.groupId, [u])));
    await Promise.all([
      ...people.slice(0, 20).map((u) => store.removeMembers(demo.appId, demo.groupId, [u])),
      ...people.slice(10, 30).map((u) => store.addMembers(demo.appId, demo.groupId, [u])),
    ]);
    const group = await store.group(demo.appId, demo.groupId);
    expect(group?.memberCount).to.equal((await store.memberIds(demo.appId, demo.groupId)).length);
    expect(group?.memberCount).to.be.within(3 + 20, 3 + 30);
  });

  it("changes roles, transfers ownership and dissolves; a dissolved group takes no changes", async () => {
    expect((await store.setRole(demo.appId, demo.groupId, charlie.id, roles.admin))?.role).to.equal(roles.admin);
    expect(await store.setRole(demo.appId, demo.groupId, carol.id, roles.admin), "not a member").to.equal(undefined);
    const moved = await store.transferOwnership(demo.appId, demo.groupId, alice.id, bob.id);
    expect(moved?.ownerId).to.equal(bob.id);
    expect((await store.member(demo.appId, demo.groupId, alice.id))?.role).to.equal(roles.admin);
    expect((await store.member(demo.appId, demo.groupId, bob.id))?.role).to.equal(roles.owner);
    expect(await store.transferOwnership(demo.appId, demo.groupId, bob.id, carol.id), "not a member").to.equal(undefined);
    expect((await store.update(demo.appId, demo.groupId, { name: "Launch crew" }))?.name).to.equal("Launch crew");
    const at = new Date(Math.floor(Date.now() / 1000) * 1000);
    expect((await store.dissolve(demo.appId, demo.groupId, at))?.dissolvedAt?.getTime()).to.equal(at.getTime());
    expect(await store.addMembers(demo.appId, demo.groupId, [carol.id])).to.equal(undefined);
    expect(await store.update(demo.appId, demo.groupId, { name: "x" })).to.equal(undefined);
    expect(await store.dissolve(demo.appId, demo.groupId, at)).to.equal(undefined);
    expect(await store.groupsOf(demo.appId, alice.id, 10)).to.deep.equal([]);
  });

  it("lists a user's groups and a group's members by id pages, and records joined seqs", async () => {
    const ids = [randomUUID(), randomUUID(), randomUUID()].sort();
    for (const id of ids) await store.create({ appId: demo.appId, id, name: id, avatarUrl: "", ownerId: carol.id }, []);
    const firstPage = await store.groupsOf(demo.appId, carol.id, 2);
    expect(firstPage.map((g) => g.id)).to.deep.equal(ids.slice(0, 2));
    expect((await store.groupsOf(demo.appId, carol.id, 2, firstPage[1]!.id)).map((g) => g.id)).to.deep.equal(ids.slice(2));
    const members = await store.members(demo.appId, demo.groupId, 2);
    expect(members.map((m) => m.userId)).to.deep.equal([alice.id, bob.id, charlie.id].sort().slice(0, 2));
    await store.setJoinedSeq(demo.appId, demo.groupId, [charlie.id], 7);
    expect((await store.member(demo.appId, demo.groupId, charlie.id))?.joinedSeq).to.equal(7);
  });
}

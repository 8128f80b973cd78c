// The behaviour both RefreshTokenStore implementations must show; refresh-token-store.test.ts runs it against each.
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import type { AccountStore } from "./account-store.js";
import type { NewRefreshToken, RefreshTokenStore } from "./refresh-token-store.js";

/** A token store with the account store of the same backend (refresh tokens belong to existing users). */
export interface RefreshTokenHarness {
  tokens: RefreshTokenStore;
  accounts: AccountStore;
  close(): Promise<void>;
}

/** Registers the shared RefreshTokenStore cases. */
export function refreshTokenStoreContract(open: () => Promise<RefreshTokenHarness>): void {
  let h: RefreshTokenHarness;
  let appId: string;
  let userId: string;
  const hour = 3_600_000;
  const token = (over: Partial<NewRefreshToken> = {}): NewRefreshToken => ({
    id: randomUUID(),
    appId,
    userId,
    deviceId: "phone",
    deviceName: "Phone",
    platform: 2,
    familyId: randomUUID(),
    tokenHash: randomUUID().replaceAll("-", "").padEnd(64, "0"),
    expiresAt: new Date(Date.now() + hour),
    ...over,
  });
  const addUser = async (app: string) => {
    const id = randomUUID();
    await h.accounts.createAccount({ appId: app, id, username: `u${id.slice(0, 8)}`, email: null, displayName: "U", passwordHash: "h" });
    return id;
  };

  beforeEach(async () => {
    h = await open();
    appId = randomUUID();
    await h.accounts.createApp({ id: appId, name: "App", apiKey: `key-${appId}`, apiSecretHash: "h" });
    userId = await addUser(appId);
  });
  afterEach(() => h.close());

  it("consumes a token once: the first use says so, a replay is recognised, an unknown token is undefined", async () => {
    const t = token();
    await h.tokens.insert(t);
    const now = new Date();
    const first = await h.tokens.consume(t.tokenHash, now);
    expect(first?.firstUse).to.equal(true);
    expect(first?.record).to.include({ familyId: t.familyId, deviceId: "phone", userId, appId, revokedAt: null });
    const replay = await h.tokens.consume(t.tokenHash, new Date());
    expect(replay?.firstUse).to.equal(false);
    expect(replay?.record.usedAt).to.be.instanceOf(Date);
    expect(await h.tokens.consume("0".repeat(64), now)).to.equal(undefined);
  });

  it("lets exactly one of 20 concurrent uses of a token be the first", async () => {
    const t = token();
    await h.tokens.insert(t);
    const results = await Promise.all(Array.from({ length: 20 }, () => h.tokens.consume(t.tokenHash, new Date())));
    expect(results.filter((r) => r?.firstUse)).to.have.length(1);
  });

  it("revokes a whole family, and only that family", async () => {
    const family = randomUUID();
    const [a, b, other] = [token({ familyId: family }), token({ familyId: family }), token()];
    for (const t of [a, b, other]) await h.tokens.insert(t);
    expect(await h.tokens.revokeFamily(family, new Date())).to.equal(2);
    expect(await h.tokens.revokeFamily(family, new Date())).to.equal(0);
    expect((await h.tokens.consume(b.tokenHash, new Date()))?.record.revokedAt).to.be.instanceOf(Date);
    expect((await h.tokens.consume(other.tokenHash, new Date()))?.record.revokedAt).to.equal(null);
  });

  it("revokes one device or every device of one user, never another user's or app's", async () => {
    const stranger = await addUser(appId);
    const otherApp = randomUUID();
    await h.accounts.createApp({ id: otherApp, name: "Other", apiKey: `key-${otherApp}`, apiSecretHash: "h" });
    const foreigner = await addUser(otherApp);
    await h.tokens.insert(token({ deviceId: "phone" }));
    await h.tokens.insert(token({ deviceId: "laptop" }));
    await h.tokens.insert(token({ userId: stranger, deviceId: "phone" }));
    await h.tokens.insert(token({ appId: otherApp, userId: foreigner, deviceId: "phone" }));
    expect(await h.tokens.revokeDevice(appId, userId, "phone", new Date())).to.equal(1);
    expect((await h.tokens.devices(appId, userId, new Date())).map((d) => d.deviceId)).to.deep.equal(["laptop"]);
    expect(await h.tokens.revokeUser(appId, userId, new Date())).to.equal(1);
    expect(await h.tokens.devices(appId, userId, new Date())).to.deep.equal([]);
    expect(await h.tokens.devices(appId, stranger, new Date())).to.have.length(1);
    expect(await h.tokens.devices(otherApp, foreigner, new Date())).to.have.length(1);
  });

  it("lists live devices once each, newest activity first, leaving out used, revoked and expired tokens", async () => {
    await h.tokens.insert(token({ deviceId: "old-tablet", expiresAt: new Date(Date.now() - 1000) }));
    const used = token({ deviceId: "laptop" });
    await h.tokens.insert(used);
    await h.tokens.consume(used.tokenHash, new Date());
    await h.tokens.insert(token({ deviceId: "phone", deviceName: "Phone" }));
    await new Promise((r) => setTimeout(r, 10));
    await h.tokens.insert(token({ deviceId: "phone", deviceName: "Phone (new)" }));
    await new Promise((r) => setTimeout(r, 10));
    await h.tokens.insert(token({ deviceId: "desktop", deviceName: "Desktop", platform: 4 }));
    const devices = await h.tokens.devices(appId, userId, new Date());
    expect(devices.map((d) => [d.deviceId, d.deviceName])).to.deep.equal([["desktop", "Desktop"], ["phone", "Phone (new)"]]);
    expect(devices[0]!.platform).to.equal(4);
  });
}

// The behaviour both AccountStore implementations must show; account-store.test.ts runs it against each.
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { ConflictError } from "../../platform/errors.js";
import type { AccountStore, NewAccount } from "./account-store.js";

/** Registers the shared AccountStore cases; `open` returns a store on empty tables. */
export function accountStoreContract(open: () => Promise<{ store: AccountStore; close(): Promise<void> }>): void {
  let store: AccountStore;
  let close: () => Promise<void>;
  let appId: string;
  const newAccount = (over: Partial<NewAccount> = {}): NewAccount => ({
    appId,
    id: randomUUID(),
    username: `user${randomUUID().slice(0, 8)}`,
    email: null,
    displayName: "User",
    passwordHash: "scrypt$ln=15,r=8,p=1$salt$hash",
    ...over,
  });
  const conflict = async (work: Promise<unknown>) => {
    const err = await work.then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(ConflictError);
    return (err as ConflictError).field;
  };

  beforeEach(async () => {
    ({ store, close } = await open());
    appId = randomUUID();
    await store.createApp({ id: appId, name: "Test App", apiKey: `key-${appId}`, apiSecretHash: "sha256$00" });
  });
  afterEach(() => close());

  it("finds apps by id and API key, refuses a taken key, and replaces the secret hash", async () => {
    const app = await store.findAppByApiKey(`key-${appId}`);
    expect(app?.id).to.equal(appId);
    expect(app?.createdAt).to.be.instanceOf(Date);
    expect((await store.findApp(appId))?.name).to.equal("Test App");
    expect(await store.findAppByApiKey("nope")).to.equal(undefined);
    expect(await conflict(store.createApp({ id: randomUUID(), name: "x", apiKey: `key-${appId}`, apiSecretHash: "h" }))).to.equal("api_key");
    expect(await store.setAppSecretHash(appId, "sha256$11")).to.equal(true);
    expect((await store.findApp(appId))?.apiSecretHash).to.equal("sha256$11");
    expect(await store.setAppSecretHash(randomUUID(), "h")).to.equal(false);
  });

  it("creates accounts and finds them by id, username (any case) and email", async () => {
    const created = await store.createAccount(newAccount({ username: "Alice", email: "alice@example.com", displayName: "Alice A." }));
    expect(created).to.include({ appId, username: "Alice", email: "alice@example.com", displayName: "Alice A." });
    expect((await store.findAccount(appId, created.id))?.username).to.equal("Alice");
    expect((await store.findAccountByUsername(appId, "ALICE"))?.id).to.equal(created.id);
    expect((await store.findAccountByEmail(appId, "Alice@Example.com"))?.id).to.equal(created.id);
    expect(await store.findAccountByUsername(appId, "bob")).to.equal(undefined);
  });

  it("refuses a taken username or email within an app, whatever the case", async () => {
    await store.createAccount(newAccount({ username: "carol", email: "carol@example.com" }));
    expect(await conflict(store.createAccount(newAccount({ username: "CAROL" })))).to.equal("username");
    expect(await conflict(store.createAccount(newAccount({ email: "CAROL@example.com" })))).to.equal("email");
    await store.createAccount(newAccount({ email: null }));
    await store.createAccount(newAccount({ email: null }));
  });

  it("keeps apps apart: the same username in another app is fine, and lookups never cross apps", async () => {
    const other = randomUUID();
    await store.createApp({ id: other, name: "Other", apiKey: `key-${other}`, apiSecretHash: "h" });
    const mine = await store.createAccount(newAccount({ username: "dave", email: "dave@example.com" }));
    const theirs = await store.createAccount(newAccount({ appId: other, username: "dave", email: "dave@example.com" }));
    expect((await store.findAccountByUsername(appId, "dave"))?.id).to.equal(mine.id);
    expect((await store.findAccountByUsername(other, "dave"))?.id).to.equal(theirs.id);
    expect(await store.findAccount(other, mine.id)).to.equal(undefined);
    expect(await store.setPasswordHash(other, mine.id, "x")).to.equal(false);
  });

  it("replaces a password hash", async () => {
    const a = await store.createAccount(newAccount());
    expect(await store.setPasswordHash(appId, a.id, "scrypt$ln=16,r=8,p=1$s$h")).to.equal(true);
    expect((await store.findAccount(appId, a.id))?.passwordHash).to.equal("scrypt$ln=16,r=8,p=1$s$h");
  });
}

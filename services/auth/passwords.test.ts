import { expect } from "chai";
import { demo } from "../../platform/store/demo-data.js";
import { currentParams, hashPassword, passwordWeakness, verifyPassword } from "./passwords.js";

describe("auth passwords", function () {
  this.timeout(20_000);

  it("hashes with a fresh salt and verifies only the right password", async () => {
    const a = await hashPassword("correct horse battery");
    const b = await hashPassword("correct horse battery");
    expect(a).to.match(/^scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(a).to.not.equal(b);
    expect(await verifyPassword("correct horse battery", a)).to.deep.equal({ ok: true, needsRehash: false });
    expect((await verifyPassword("correct horse batterY", a)).ok).to.equal(false);
  });

  it("verifies the demo users' stored hash", async () => {
    expect((await verifyPassword(demo.password, demo.passwordHash)).ok).to.equal(true);
  });

  it("treats composed and decomposed Unicode as the same password", async () => {
    const stored = await hashPassword("caf\u00e9-au-lait-42");
    expect((await verifyPassword("cafe\u0301-au-lait-42", stored)).ok).to.equal(true);
  });

  it("asks for a rehash of a hash made with weaker parameters, and still accepts it", async () => {
    const weak = await hashPassword("old password 1", { ...currentParams, logN: 12 });
    expect(await verifyPassword("old password 1", weak)).to.deep.equal({ ok: true, needsRehash: true });
  });

  it("refuses missing, malformed and absurd hashes without throwing", async () => {
    for (const stored of [undefined, "", "plain", "scrypt$ln=30,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]) {
      expect((await verifyPassword("anything", stored)).ok, String(stored)).to.equal(false);
    }
  });

  it("refuses weak passwords with a reason that says what to fix", () => {
    const who = { username: "alice", email: "alice.smith@example.com" };
    expect(passwordWeakness("short1!", who)).to.match(/at least 8 characters/);
    expect(passwordWeakness("abcdefgh", who)).to.match(/12 characters, or mix/);
    expect(passwordWeakness("aaaaaaaaaaaaaaa", who)).to.match(/too few different characters/);
    expect(passwordWeakness("my-alice-pass-9", who)).to.match(/username or email/);
    expect(passwordWeakness("ALICE.SMITH rocks 1", who)).to.match(/username or email/);
    expect(passwordWeakness("x".repeat(60) + "é".repeat(40), who)).to.match(/128 bytes/);
    expect(passwordWeakness("tr0ub4dor&3", who)).to.equal(undefined);
    expect(passwordWeakness("correct horse battery staple", who)).to.equal(undefined);
  });
});

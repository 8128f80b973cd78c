import { createHmac } from "node:crypto";
import { expect } from "chai";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { accessTokenTtlSeconds, AccessTokenVerifier } from "../../mesh/user-tokens.js";
import { AccessTokenIssuer } from "./access-tokens.js";

const subject = { appId: "00000000-0000-0000-0000-000000000001", userId: "a11ce000-0000-4000-8000-000000000001", deviceId: "phone" };
const b64 = (v: object | string) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

describe("auth access tokens", () => {
  let issuer: AccessTokenIssuer;
  let verifier: AccessTokenVerifier;

  beforeEach(async () => {
    issuer = await AccessTokenIssuer.generate();
    verifier = new AccessTokenVerifier(issuer.publicKeys());
  });

  it("issues a 15-minute EdDSA token that verifies to the user, app and device", async () => {
    const { token, jti, expiresAt } = await issuer.issue(subject);
    const [header] = token.split(".");
    expect(JSON.parse(Buffer.from(header!, "base64url").toString())).to.include({ alg: "EdDSA", typ: "at+jwt" });
    expect(expiresAt.getTime() - Date.now()).to.be.within((accessTokenTtlSeconds - 5) * 1000, accessTokenTtlSeconds * 1000);
    expect(await verifier.verify(token)).to.deep.equal({ kind: "user", ...subject, tokenId: jti });
  });

  it("refuses an expired token", async () => {
    const { token } = await issuer.issue(subject, Date.now() - (accessTokenTtlSeconds + 5) * 1000);
    expect(await verifier.verify(token)).to.equal(undefined);
  });

  it("refuses a token signed by another key under a known key id", async () => {
    const { token } = await issuer.issue(subject);
    const kid = JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()).kid;
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const forged = await new SignJWT({ app: subject.appId, dev: "x" })
      .setProtectedHeader({ alg: "EdDSA", kid, typ: "at+jwt" })
      .setIssuer("im-mesh/auth").setAudience("im-mesh/api").setSubject(subject.userId).setJti("j").setIssuedAt().setExpirationTime("10m")
      .sign(privateKey);
    expect(await verifier.verify(forged)).to.equal(undefined);
  });

  it("refuses alg none and HS256 signed with the public key", async () => {
    const { token } = await issuer.issue(subject);
    const [header, payload] = token.split(".");
    const kid = JSON.parse(Buffer.from(header!, "base64url").toString()).kid;
    const unsigned = `${b64({ alg: "none", kid, typ: "at+jwt" })}.${payload}.`;
    expect(await verifier.verify(unsigned)).to.equal(undefined);
    const publicJwk = issuer.publicKeys()[0]!.jwk;
    for (const secret of [JSON.stringify(publicJwk), Buffer.from(publicJwk.x!, "base64url")]) {
      const head = b64({ alg: "HS256", kid, typ: "at+jwt" });
      const mac = createHmac("sha256", secret).update(`${head}.${payload}`).digest("base64url");
      expect(await verifier.verify(`${head}.${payload}.${mac}`)).to.equal(undefined);
    }
  });

  it("refuses a tampered payload and garbage", async () => {
    const { token } = await issuer.issue(subject);
    const [header, payload, signature] = token.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    const tampered = `${header}.${b64({ ...claims, sub: "ca201000-0000-4000-8000-000000000004" })}.${signature}`;
    expect(await verifier.verify(tampered)).to.equal(undefined);
    for (const junk of ["", "a.b.c", "x".repeat(5000), `${header}.${payload}`]) expect(await verifier.verify(junk)).to.equal(undefined);
  });

  it("refuses tokens signed with the real key but meant for something else or missing a claim", async () => {
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const real = await AccessTokenIssuer.fromPrivateJwks([{ ...(await exportJWK(privateKey)), kid: "real" }]);
    const check = new AccessTokenVerifier(real.publicKeys());
    const sign = (change: { aud?: string; iss?: string; typ?: string; claims?: Record<string, string> }) =>
      new SignJWT(change.claims ?? { app: subject.appId, dev: subject.deviceId })
        .setProtectedHeader({ alg: "EdDSA", kid: "real", typ: change.typ ?? "at+jwt" })
        .setIssuer(change.iss ?? "im-mesh/auth")
        .setAudience(change.aud ?? "im-mesh/api")
        .setSubject(subject.userId)
        .setJti("j1")
        .setIssuedAt()
        .setExpirationTime("10m")
        .sign(privateKey);
    expect(await check.verify(await sign({})), "the control token").to.not.equal(undefined);
    expect(await check.verify(await sign({ aud: "im-mesh/internal" }))).to.equal(undefined);
    expect(await check.verify(await sign({ iss: "someone-else" }))).to.equal(undefined);
    expect(await check.verify(await sign({ typ: "JWT" }))).to.equal(undefined);
    expect(await check.verify(await sign({ claims: { app: subject.appId } }))).to.equal(undefined);
  });

  it("refuses a revoked token", async () => {
    const revoked = new Set<string>();
    const checking = new AccessTokenVerifier(issuer.publicKeys(), async (q) => revoked.has(q.jti));
    const { token, jti } = await issuer.issue(subject);
    expect(await checking.verify(token)).to.not.equal(undefined);
    revoked.add(jti);
    expect(await checking.verify(token)).to.equal(undefined);
  });

  it("keeps tokens of the previous key valid after a rotation until that key retires", async () => {
    const before = await issuer.issue(subject);
    await issuer.rotate();
    const after = await issuer.issue(subject);
    verifier.setKeys(issuer.publicKeys());
    expect(issuer.publicKeys()).to.have.length(2);
    expect(await verifier.verify(before.token)).to.not.equal(undefined);
    expect(await verifier.verify(after.token)).to.not.equal(undefined);
    const later = Date.now() + (accessTokenTtlSeconds + 1) * 1000;
    expect(issuer.publicKeys(later)).to.have.length(1);
    expect(await verifier.verify(before.token, later)).to.equal(undefined);
  });

  it("loads shared private keys so every auth instance signs with the same key", async () => {
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: "k1" };
    const a = await AccessTokenIssuer.fromPrivateJwks([jwk]);
    const b = await AccessTokenIssuer.fromPrivateJwks([jwk]);
    const { token } = await a.issue(subject);
    expect(b.publicKeys()[0]!.jwk).to.not.have.property("d");
    expect(await new AccessTokenVerifier(b.publicKeys()).verify(token)).to.not.equal(undefined);
    const err = await AccessTokenIssuer.fromPrivateJwks([{ kty: "OKP", crv: "Ed25519", x: jwk.x! }]).catch((e: unknown) => e);
    expect((err as Error).message).to.match(/private Ed25519 JWKs with a kid/);
  });

  it("a verifier fed by a key source learns a rotated key from the first token it signs, at most once per interval", async () => {
    let fetches = 0;
    const source = { fetch: async () => (fetches++, issuer.publicKeys()), minRefetchMs: 60_000 };
    const remote = await AccessTokenVerifier.fromSource(source);
    expect(await remote.verify((await issuer.issue(subject)).token)).to.not.equal(undefined);
    expect(fetches).to.equal(1);
    await issuer.rotate();
    // The fetch at start was just now, so the unknown key id does not trigger another one yet.
    expect(await remote.verify((await issuer.issue(subject)).token)).to.equal(undefined);
    const later = new AccessTokenVerifier([], undefined, { fetch: source.fetch, minRefetchMs: 0 });
    expect(await later.verify((await issuer.issue(subject)).token)).to.not.equal(undefined);
    expect(fetches).to.equal(2);
    // A forged key id costs at most one fetch per interval, never one per token.
    const spammed = await AccessTokenVerifier.fromSource(source);
    const [, payload, sig] = (await issuer.issue(subject)).token.split(".");
    for (let i = 0; i < 20; i++) await spammed.verify(`${b64({ alg: "EdDSA", kid: `forged-${i}`, typ: "at+jwt" })}.${payload}.${sig}`);
    expect(fetches).to.equal(3);
  });

  it("a failing revocation lookup rejects instead of calling the token invalid", async () => {
    const down = new AccessTokenVerifier(issuer.publicKeys(), async () => {
      throw new Error("kv down");
    });
    const err = await down.verify((await issuer.issue(subject)).token).catch((e: unknown) => e);
    expect((err as Error).message).to.equal("kv down");
  });

  it("a key fetch that failed (auth not up yet) does not hold back the next one", async () => {
    let up = false;
    const remote = new AccessTokenVerifier([], undefined, {
      fetch: async () => {
        if (!up) throw new Error("auth is not registered yet");
        return issuer.publicKeys();
      },
      minRefetchMs: 60_000,
    });
    await remote.refresh().catch(() => {});
    up = true;
    expect(await remote.verify((await issuer.issue(subject)).token)).to.not.equal(undefined);
  });
});

import { randomUUID } from "node:crypto";
import { createLocalJWKSet, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type CryptoKey, type JWK, type JWTVerifyGetKey } from "jose";
import type { Identity } from "../../mesh/identity.js";

/** Issuer, audience and type every access token carries, so a JWT from elsewhere never passes. */
const issuer = "im-mesh/auth";
const audience = "im-mesh/api";
const tokenType = "at+jwt";

/** Access tokens live 15 minutes (DESIGN.md §3). */
export const accessTokenTtlSeconds = 15 * 60;

/** A public key any service may verify tokens with, as ListVerificationKeys publishes it. */
export interface PublicKeyInfo {
  readonly kid: string;
  readonly jwk: JWK;
  /** After this instant (ms) no token signed with the key is valid any more; undefined for the current key. */
  readonly retireAfter: number | undefined;
}

interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  retireAfter: number | undefined;
}

/** Who an access token is for. */
export interface TokenSubject {
  readonly appId: string;
  readonly userId: string;
  readonly deviceId: string;
}

/** An issued token with what the caller stores or returns beside it. */
export interface IssuedToken {
  readonly token: string;
  readonly jti: string;
  readonly expiresAt: Date;
}

async function newKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const kid = randomUUID();
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" }, retireAfter: undefined };
}

/**
 * Signs access tokens with Ed25519 (JWS alg EdDSA). Keys carry ids; after rotate() the previous key stays
 * published until every token it signed has expired, so two keys can be valid at once.
 */
export class AccessTokenIssuer {
  private constructor(private keys: SigningKey[]) {}

  /** An issuer with a freshly generated key (all-in-one mode, tests). */
  static async generate(): Promise<AccessTokenIssuer> {
    return new AccessTokenIssuer([await newKey()]);
  }

  /** An issuer from private JWKs shared by every auth instance (mesh mode); the first is the signing key. */
  static async fromPrivateJwks(jwks: readonly JWK[]): Promise<AccessTokenIssuer> {
    if (jwks.length === 0) throw new Error("at least one signing key is needed");
    const keys = await Promise.all(
      jwks.map(async (jwk) => {
        if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || jwk.d === undefined || jwk.kid === undefined) {
          throw new Error("signing keys must be private Ed25519 JWKs with a kid");
        }
        const { d: _private, ...pub } = jwk;
        return {
          kid: jwk.kid,
          privateKey: (await importJWK(jwk, "EdDSA")) as CryptoKey,
          publicJwk: { ...pub, alg: "EdDSA", use: "sig" },
          retireAfter: undefined,
        };
      }),
    );
    return new AccessTokenIssuer(keys);
  }

  /** Makes a new key current; the previous ones retire once the tokens they signed have expired. */
  async rotate(now = Date.now()): Promise<void> {
    for (const key of this.keys) key.retireAfter ??= now + accessTokenTtlSeconds * 1000;
    this.keys = [await newKey(), ...this.keys.filter((k) => k.retireAfter! > now)];
  }

  /** Signs a 15-minute access token for one device. */
  async issue(subject: TokenSubject, now = Date.now()): Promise<IssuedToken> {
    const key = this.keys[0]!;
    const jti = randomUUID();
    const iat = Math.floor(now / 1000);
    const exp = iat + accessTokenTtlSeconds;
    // iat has second precision; iatms lets a sign-out revoke exactly the tokens issued before it.
    const token = await new SignJWT({ app: subject.appId, dev: subject.deviceId, iatms: now })
      .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: tokenType })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(subject.userId)
      .setJti(jti)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(key.privateKey);
    return { token, jti, expiresAt: new Date(exp * 1000) };
  }

  /** The public keys to verify with, newest first (what ListVerificationKeys returns). */
  publicKeys(now = Date.now()): PublicKeyInfo[] {
    return this.keys.filter((k) => k.retireAfter === undefined || k.retireAfter > now).map((k) => ({ kid: k.kid, jwk: k.publicJwk, retireAfter: k.retireAfter }));
  }
}

/** What a revocation check looks at: the token's id, and whose and when it is (device and user sign-outs). */
export interface RevocationQuery {
  readonly jti: string;
  readonly appId: string;
  readonly userId: string;
  readonly deviceId: string;
  /** When the token was issued, ms since the epoch. */
  readonly issuedAt: number;
}

/**
 * Verifies access tokens locally from the published public keys: only EdDSA, only our issuer, audience and type,
 * unexpired, with every claim present, signed by a key that has not retired, and not revoked.
 */
export class AccessTokenVerifier {
  private keySet: JWTVerifyGetKey;
  private retire = new Map<string, number | undefined>();

  constructor(
    keys: readonly PublicKeyInfo[],
    private readonly isRevoked: (token: RevocationQuery) => Promise<boolean> = async () => false,
  ) {
    this.keySet = createLocalJWKSet({ keys: [] });
    this.setKeys(keys);
  }

  /** Replaces the keys (after a rotation). */
  setKeys(keys: readonly PublicKeyInfo[]): void {
    this.keySet = createLocalJWKSet({ keys: keys.map((k) => k.jwk) });
    this.retire = new Map(keys.map((k) => [k.kid, k.retireAfter]));
  }

  /** The identity in a valid token, or undefined for any token that is not (never throws). */
  async verify(token: string, now = Date.now()): Promise<Extract<Identity, { kind: "user" }> | undefined> {
    try {
      const { payload, protectedHeader } = await jwtVerify(token, this.keySet, {
        algorithms: ["EdDSA"],
        issuer,
        audience,
        typ: tokenType,
        requiredClaims: ["sub", "jti", "exp", "iat", "app", "dev"],
        currentDate: new Date(now),
      });
      const retireAfter = this.retire.get(protectedHeader.kid ?? "");
      if (retireAfter !== undefined && retireAfter <= now) return undefined;
      if (typeof payload.app !== "string" || typeof payload.dev !== "string" || typeof payload.sub !== "string" || typeof payload.jti !== "string") return undefined;
      const issuedAt = typeof payload.iatms === "number" ? payload.iatms : (payload.iat ?? 0) * 1000;
      const query = { jti: payload.jti, appId: payload.app, userId: payload.sub, deviceId: payload.dev, issuedAt };
      if (await this.isRevoked(query)) return undefined;
      return { kind: "user", appId: payload.app, userId: payload.sub, deviceId: payload.dev, tokenId: payload.jti };
    } catch {
      return undefined;
    }
  }
}

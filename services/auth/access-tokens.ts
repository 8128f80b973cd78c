import { randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from "jose";
import { accessTokenClaims, accessTokenTtlSeconds, type PublicKeyInfo } from "../../mesh/user-tokens.js";

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
      .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: accessTokenClaims.type })
      .setIssuer(accessTokenClaims.issuer)
      .setAudience(accessTokenClaims.audience)
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

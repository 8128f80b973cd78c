import { createLocalJWKSet, errors, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey } from "jose";
import type { Kv } from "../platform/kv/kv.js";
import type { Identity } from "./identity.js";

/** Issuer, audience and type every access token carries, so a JWT from elsewhere never passes. */
export const accessTokenClaims = { issuer: "im-mesh/auth", audience: "im-mesh/api", type: "at+jwt" } as const;

/** Access tokens live 15 minutes (DESIGN.md §3). */
export const accessTokenTtlSeconds = 15 * 60;

/** A public key any service may verify tokens with, as ListVerificationKeys publishes it. */
export interface PublicKeyInfo {
  readonly kid: string;
  readonly jwk: JWK;
  /** After this instant (ms) no token signed with the key is valid any more; undefined for the current key. */
  readonly retireAfter: number | undefined;
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
  private lastFetch = 0;
  private fetching: Promise<void> | undefined;

  constructor(
    keys: readonly PublicKeyInfo[],
    private readonly isRevoked: (token: RevocationQuery) => Promise<boolean> = async () => false,
    private readonly source?: KeySource,
  ) {
    this.keySet = createLocalJWKSet({ keys: [] });
    this.setKeys(keys);
  }

  /**
   * A verifier whose keys come from the auth service (other services in mesh mode): fetched now, and again when a
   * token names a key id not seen yet (at most once per `minRefetchMs`), so a rotation reaches every service
   * with the first token signed by the new key.
   */
  static async fromSource(source: KeySource, isRevoked?: (token: RevocationQuery) => Promise<boolean>): Promise<AccessTokenVerifier> {
    const verifier = new AccessTokenVerifier([], isRevoked, source);
    await verifier.refresh();
    return verifier;
  }

  /** Replaces the keys (after a rotation). */
  setKeys(keys: readonly PublicKeyInfo[]): void {
    this.keySet = createLocalJWKSet({ keys: keys.map((k) => k.jwk) });
    this.retire = new Map(keys.map((k) => [k.kid, k.retireAfter]));
  }

  /** Fetches the keys from the source again (one fetch at a time). */
  async refresh(): Promise<void> {
    if (this.source === undefined) return;
    this.fetching ??= (async () => {
      try {
        const keys = await this.source!.fetch();
        this.setKeys(keys);
        // Only a fetch that worked counts against the interval: until one has, every unknown key id may try.
        this.lastFetch = Date.now();
      } finally {
        this.fetching = undefined;
      }
    })();
    return this.fetching;
  }

  private async check(token: string, now: number): Promise<JWTPayload | undefined> {
    try {
      const { payload, protectedHeader } = await jwtVerify(token, this.keySet, {
        algorithms: ["EdDSA"],
        issuer: accessTokenClaims.issuer,
        audience: accessTokenClaims.audience,
        typ: accessTokenClaims.type,
        requiredClaims: ["sub", "jti", "exp", "iat", "app", "dev"],
        currentDate: new Date(now),
      });
      const retireAfter = this.retire.get(protectedHeader.kid ?? "");
      return retireAfter !== undefined && retireAfter <= now ? undefined : payload;
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || this.source === undefined) return undefined;
      if (Date.now() - this.lastFetch < (this.source.minRefetchMs ?? 5000)) return undefined;
      // Signed by a key this process has not seen: the auth service may have rotated.
      try {
        await this.refresh();
      } catch {
        return undefined;
      }
      return this.check(token, now);
    }
  }

  /**
   * The identity in a valid token, or undefined for any token that is not. A failing revocation lookup rejects
   * (the caller answers Unavailable): an outage of the kv store must not look like a signed-out user.
   */
  async verify(token: string, now = Date.now()): Promise<Extract<Identity, { kind: "user" }> | undefined> {
    const payload = await this.check(token, now);
    if (payload === undefined) return undefined;
    if (typeof payload.app !== "string" || typeof payload.dev !== "string" || typeof payload.sub !== "string" || typeof payload.jti !== "string") return undefined;
    const issuedAt = typeof payload.iatms === "number" ? payload.iatms : (payload.iat ?? 0) * 1000;
    const query = { jti: payload.jti, appId: payload.app, userId: payload.sub, deviceId: payload.dev, issuedAt };
    if (await this.isRevoked(query)) return undefined;
    return { kind: "user", appId: payload.app, userId: payload.sub, deviceId: payload.dev, tokenId: payload.jti };
  }
}

/** Where a verifier outside the auth service gets the public keys (AuthInternalService.ListVerificationKeys). */
export interface KeySource {
  fetch(): Promise<PublicKeyInfo[]>;
  /** Least time between two fetches triggered by unknown key ids (default 5 s), so forged kids cannot flood auth. */
  readonly minRefetchMs?: number;
}

const ttlMs = accessTokenTtlSeconds * 1000 + 60_000;

/**
 * Access-token revocations in the kv store (DESIGN.md §5 `revoked:<jti>`), plus "revoked before" times per device and
 * per user, so signing a device or a user out kills every access token issued to it before that moment. Entries
 * outlive the longest token by a minute and then expire by themselves.
 */
export class Revocations {
  constructor(private readonly kv: Kv) {}

  /** Revokes one token until it would have expired anyway. */
  async revokeToken(jti: string): Promise<void> {
    await this.kv.set(`revoked:${jti}`, "1", { ttlMs });
  }

  /** Revokes every token issued to the device until now. */
  async revokeDevice(appId: string, userId: string, deviceId: string, now = Date.now()): Promise<void> {
    await this.kv.set(`revoked-before:${appId}:${userId}:${deviceId}`, String(now), { ttlMs });
  }

  /** Revokes every token issued to any of the user's devices until now. */
  async revokeUser(appId: string, userId: string, now = Date.now()): Promise<void> {
    await this.kv.set(`revoked-before:${appId}:${userId}`, String(now), { ttlMs });
  }

  /** Whether a token is revoked, by id or by a device or user sign-out after it was issued. */
  async isRevoked(q: RevocationQuery): Promise<boolean> {
    const [byId = null, byDevice = null, byUser = null] = await this.kv.getMany([
      `revoked:${q.jti}`,
      `revoked-before:${q.appId}:${q.userId}:${q.deviceId}`,
      `revoked-before:${q.appId}:${q.userId}`,
    ]);
    // Strictly before: a sign-in revokes the device's old tokens and then issues a new one in the same millisecond.
    const before = (v: string | null) => v !== null && q.issuedAt < Number(v);
    return byId !== null || before(byDevice) || before(byUser);
  }
}

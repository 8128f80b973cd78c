import type { Kv } from "../../platform/kv/kv.js";
import { accessTokenTtlSeconds, type RevocationQuery } from "./access-tokens.js";

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
    const [byId, byDevice, byUser] = await Promise.all([
      this.kv.get(`revoked:${q.jti}`),
      this.kv.get(`revoked-before:${q.appId}:${q.userId}:${q.deviceId}`),
      this.kv.get(`revoked-before:${q.appId}:${q.userId}`),
    ]);
    // Strictly before: a sign-in revokes the device's old tokens and then issues a new one in the same millisecond.
    const before = (v: string | null) => v !== null && q.issuedAt < Number(v);
    return byId !== null || before(byDevice) || before(byUser);
  }
}

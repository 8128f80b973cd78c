import type { JWK } from "jose";
import { AuthAdminService, AuthInternalService, AuthService } from "../../gen/im/auth/v1/auth_pb.js";
import { mount } from "../../mesh/server.js";
import { ConfigError } from "../../platform/config.js";
import type { ServiceModule } from "../runtime.js";
import { AccessTokenIssuer } from "./access-tokens.js";
import { MemoryAccountStore, SqlAccountStore } from "./account-store.js";
import { Kick_Reason } from "../../gen/im/gateway/v1/gateway_pb.js";
import { kickDevice } from "../../mesh/routes.js";
import { TrustedProxies } from "../../mesh/client-address.js";
import { createAuthServices } from "./auth-service.js";
import { MemoryRefreshTokenStore, SqlRefreshTokenStore } from "./refresh-token-store.js";

/** Reads IM_AUTH_SIGNING_KEYS: a JSON array of private Ed25519 JWKs (newest first), as `npm run keygen` prints it. */
export async function signingKeysFromConfig(json: string): Promise<AccessTokenIssuer> {
  let keys: unknown;
  try {
    keys = JSON.parse(json);
  } catch {
    throw new ConfigError("IM_AUTH_SIGNING_KEYS", "is not JSON; expected an array of private Ed25519 JWKs as `npm run keygen` prints it");
  }
  if (!Array.isArray(keys) || keys.length === 0) throw new ConfigError("IM_AUTH_SIGNING_KEYS", "must be a non-empty JSON array of private JWKs");
  try {
    return await AccessTokenIssuer.fromPrivateJwks(keys as JWK[]);
  } catch (err) {
    throw new ConfigError("IM_AUTH_SIGNING_KEYS", (err as Error).message);
  }
}

/**
 * The auth service: tenants, accounts, sessions and tokens. It signs with the configured keys (a fresh key
 * all-in-one) and hands its public keys to the process's verifier directly.
 */
export const authModule: ServiceModule = {
  name: "auth",
  async build(rt) {
    const signing = rt.config.secrets.authSigningKeys;
    const issuer = signing !== undefined ? await signingKeysFromConfig(signing) : await AccessTokenIssuer.generate();
    rt.provideKeys({ fetch: async () => issuer.publicKeys(), minRefetchMs: 1000 });
    rt.userTokens.setKeys(issuer.publicKeys());
    const sql = rt.store.kind === "sql" ? rt.store.db : undefined;
    const tables = rt.store.kind === "memory" ? rt.store.tables : undefined;
    const auth = createAuthServices({
      accounts: sql ? new SqlAccountStore(sql) : new MemoryAccountStore(tables!),
      refreshTokens: sql ? new SqlRefreshTokenStore(sql) : new MemoryRefreshTokenStore(tables!),
      issuer,
      verifier: rt.userTokens,
      revocations: rt.revocations,
      kv: rt.kv,
      trustedProxies: new TrustedProxies(rt.config.limits.trustedProxies),
      registrationLimits: { perAddress: rt.config.limits.registerPerAddress, perApp: rt.config.limits.registerPerApp },
      kickDevice: async (device) =>
        void (await kickDevice(rt.registry, rt.clients, device, { reason: Kick_Reason.REVOKED, message: "this device was signed out", reconnect: false })),
    });
    return [mount(AuthService, auth.auth), mount(AuthInternalService, auth.internal), mount(AuthAdminService, auth.admin)];
  },
};

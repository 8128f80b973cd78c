import { createHash, randomBytes, randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type AuthAdminService,
  type AuthInternalService,
  type AuthService,
  type DeviceInfo,
  DeviceSchema,
  type Session,
  SessionSchema,
} from "../../gen/im/auth/v1/auth_pb.js";
import { clientAddress, TrustedProxies } from "../../mesh/client-address.js";
import { requireUser } from "../../mesh/interceptors/auth-interceptor.js";
import { ConflictError } from "../../platform/errors.js";
import type { Kv } from "../../platform/kv/kv.js";
import { admitRegistration, SignInGuard, type RegistrationLimits, type SignInLimits } from "./auth-limits.js";
import type { Account, AccountStore } from "./account-store.js";
import type { AccessTokenVerifier, Revocations } from "../../mesh/user-tokens.js";
import type { AccessTokenIssuer } from "./access-tokens.js";
import { hashPassword, passwordWeakness, verifyPassword } from "./passwords.js";
import type { RefreshTokenStore } from "./refresh-token-store.js";

/** Refresh tokens (and so sessions left unused) last 30 days. */
const refreshTtlMs = 30 * 24 * 3_600_000;


/** What the auth handlers work with. */
export interface AuthDeps {
  readonly accounts: AccountStore;
  readonly refreshTokens: RefreshTokenStore;
  readonly issuer: AccessTokenIssuer;
  readonly verifier: AccessTokenVerifier;
  readonly revocations: Revocations;
  readonly kv: Kv;
  /** Proxies in front of the gateway whose x-forwarded-for entries are believed (default: none). */
  readonly trustedProxies?: TrustedProxies;
  /** Sign-in attempt and failure limits (default signInDefaults). */
  readonly signInLimits?: SignInLimits;
  /** Registrations per client address and per app (default: none; the module passes the configured ones). */
  readonly registrationLimits?: RegistrationLimits;
  /** Closes a signed-out device's stream on its gateway (absent in tests without gateways). */
  readonly kickDevice?: (device: { appId: string; userId: string; deviceId: string }) => Promise<void>;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

const invalidLogin = () => new ConnectError("wrong username, email or password", Code.Unauthenticated);



/** Builds the auth service's handlers (public and internal) over its stores and keys. */
export function createAuthServices(deps: AuthDeps): {
  auth: ServiceImpl<typeof AuthService>;
  internal: ServiceImpl<typeof AuthInternalService>;
  admin: ServiceImpl<typeof AuthAdminService>;
} {
  const trusted = deps.trustedProxies ?? new TrustedProxies();
  /** The client's address: the gateway appends the one it saw, and only trusted proxies' entries count before it. */
  const addressOf = (ctx: HandlerContext) => clientAddress(ctx.requestHeader.get("x-forwarded-for"), trusted);
  const signIns = new SignInGuard(deps.kv, deps.signInLimits);

  const session = async (account: Account, device: DeviceInfo, familyId: string = randomUUID()): Promise<Session> => {
    const access = await deps.issuer.issue({ appId: account.appId, userId: account.id, deviceId: device.deviceId });
    const refresh = randomBytes(32).toString("base64url");
    const refreshExpires = new Date(Date.now() + refreshTtlMs);
    await deps.refreshTokens.insert({
      id: randomUUID(),
      appId: account.appId,
      userId: account.id,
      deviceId: device.deviceId,
      deviceName: device.name,
      platform: device.platform,
      familyId,
      tokenHash: sha256(refresh),
      expiresAt: refreshExpires,
    });
    return create(SessionSchema, {
      appId: account.appId,
      userId: account.id,
      deviceId: device.deviceId,
      tokens: {
        accessToken: access.token,
        accessExpiresAt: timestampFromDate(access.expiresAt),
        refreshToken: refresh,
        refreshExpiresAt: timestampFromDate(refreshExpires),
      },
    });
  };

  const appFor = async (apiKey: string) => {
    const app = await deps.accounts.findAppByApiKey(apiKey);
    if (app === undefined) throw new ConnectError("unknown API key: use the key of your app", Code.Unauthenticated);
    return app;
  };

  /** Signs a device out everywhere it matters: its refresh tokens and every access token issued to it so far. */
  const signOutDevice = async (appId: string, userId: string, deviceId: string) => {
    await deps.revocations.revokeDevice(appId, userId, deviceId);
    const revoked = await deps.refreshTokens.revokeDevice(appId, userId, deviceId, new Date());
    // Its tokens no longer work; its open stream is closed too (best effort: a stream's token is checked at open).
    await deps.kickDevice?.({ appId, userId, deviceId }).catch(() => {});
    return revoked;
  };

  const auth: ServiceImpl<typeof AuthService> = {
    async register(req, ctx) {
      const app = await appFor(req.apiKey);
      const address = addressOf(ctx);
      await admitRegistration(deps.kv, deps.registrationLimits ?? {}, app.id, address);
      const email = req.email === "" ? null : req.email.toLowerCase();
      const weakness = passwordWeakness(req.password, { username: req.username, email });
      if (weakness !== undefined) throw new ConnectError(weakness, Code.InvalidArgument);
      const account = {
        appId: app.id,
        id: randomUUID(),
        username: req.username,
        email,
        displayName: req.displayName || req.username,
        passwordHash: await hashPassword(req.password),
      };
      // A taken username is said (the user must pick another); a taken email is not: the account is created
      // without it, so registering never tells whether an address has an account (SECURITY.md).
      const created = await deps.accounts.createAccount(account).catch((err: unknown) => {
        if (err instanceof ConflictError && err.field === "email") return deps.accounts.createAccount({ ...account, email: null });
        throw err;
      });
      await signIns.succeeded(app.id, created.id, address);
      return { session: await session(created, req.device!) };
    },

    async login(req, ctx) {
      const app = await appFor(req.apiKey);
      const login = req.login.case === "email" ? req.login.value.toLowerCase() : (req.login.value ?? "").toLowerCase();
      const address = addressOf(ctx);
      await signIns.admitAddress(address);
      const account =
        req.login.case === "email" ? await deps.accounts.findAccountByEmail(app.id, login) : await deps.accounts.findAccountByUsername(app.id, login);
      await signIns.admitAccount(app.id, login, address, account?.id);
      // verifyPassword spends the same time whether or not the account exists.
      const check = await verifyPassword(req.password, account?.passwordHash);
      if (account === undefined || !check.ok) {
        await signIns.failed(app.id, login, account?.id, address);
        throw invalidLogin();
      }
      await signIns.succeeded(app.id, account.id, address);
      if (check.needsRehash) await deps.accounts.setPasswordHash(app.id, account.id, await hashPassword(req.password));
      // A second sign-in of the same device replaces its session.
      await signOutDevice(app.id, account.id, req.device!.deviceId);
      return { session: await session(account, req.device!) };
    },

    async refreshToken(req) {
      const now = new Date();
      const used = await deps.refreshTokens.consume(sha256(req.refreshToken), now);
      if (used === undefined) throw new ConnectError("unknown refresh token: sign in again", Code.Unauthenticated);
      const { record } = used;
      if (!used.firstUse) {
        // A used token came back: someone holds a copy. End the whole sign-in chain and its access tokens.
        await deps.refreshTokens.revokeFamily(record.familyId, now);
        await deps.revocations.revokeDevice(record.appId, record.userId, record.deviceId);
        throw new ConnectError("this refresh token was already used; the session has been ended, sign in again", Code.Unauthenticated);
      }
      if (record.revokedAt !== null || record.expiresAt <= now) throw new ConnectError("the session has ended: sign in again", Code.Unauthenticated);
      const account = await deps.accounts.findAccount(record.appId, record.userId);
      if (account === undefined) throw new ConnectError("the account no longer exists", Code.Unauthenticated);
      const device = { deviceId: record.deviceId, name: record.deviceName, platform: record.platform } as DeviceInfo;
      return { session: await session(account, device, record.familyId) };
    },

    async logout(req, ctx) {
      const me = requireUser(ctx);
      await deps.revocations.revokeToken(me.tokenId);
      if (req.allDevices) {
        const devices = await deps.refreshTokens.devices(me.appId, me.userId, new Date());
        await deps.revocations.revokeUser(me.appId, me.userId);
        await deps.refreshTokens.revokeUser(me.appId, me.userId, new Date());
        return { devicesSignedOut: Math.max(1, devices.length) };
      }
      await signOutDevice(me.appId, me.userId, me.deviceId);
      return { devicesSignedOut: 1 };
    },

    async listDevices(_req, ctx) {
      const me = requireUser(ctx);
      const devices = await deps.refreshTokens.devices(me.appId, me.userId, new Date());
      return {
        devices: devices.map((d) =>
          create(DeviceSchema, {
            deviceId: d.deviceId,
            name: d.deviceName,
            platform: d.platform,
            lastActiveAt: timestampFromDate(d.lastActiveAt),
            current: d.deviceId === me.deviceId,
          }),
        ),
      };
    },

    async revokeDevice(req, ctx) {
      const me = requireUser(ctx);
      await signOutDevice(me.appId, me.userId, req.deviceId);
      return {};
    },
  };

  const internal: ServiceImpl<typeof AuthInternalService> = {
    async verifyToken(req) {
      const identity = await deps.verifier.verify(req.accessToken);
      if (identity === undefined) throw new ConnectError("the access token is invalid, expired or revoked", Code.Unauthenticated);
      return { appId: identity.appId, userId: identity.userId, deviceId: identity.deviceId, jti: identity.tokenId };
    },
    async listVerificationKeys() {
      return {
        keys: deps.issuer.publicKeys().map((k) => ({
          kid: k.kid,
          jwkJson: JSON.stringify(k.jwk),
          retireAfter: k.retireAfter === undefined ? undefined : timestampFromDate(new Date(k.retireAfter)),
        })),
      };
    },
  };

  // App secrets are 256 random bits, so a fast hash is enough to keep the stored copy useless to a thief.
  const newSecret = () => {
    const secret = randomBytes(32).toString("base64url");
    return { secret, hash: `sha256$${sha256(secret)}` };
  };

  const admin: ServiceImpl<typeof AuthAdminService> = {
    async createApp(req) {
      const id = randomUUID();
      const apiKey = `ak_${randomBytes(16).toString("base64url")}`;
      const { secret, hash } = newSecret();
      await deps.accounts.createApp({ id, name: req.name, apiKey, apiSecretHash: hash });
      return { appId: id, apiKey, apiSecret: secret };
    },
    async rotateAppSecret(req) {
      const { secret, hash } = newSecret();
      if (!(await deps.accounts.setAppSecretHash(req.appId, hash))) throw new ConnectError(`no app ${req.appId}`, Code.NotFound);
      return { apiSecret: secret };
    },
  };

  return { auth, internal, admin };
}

import { jwtVerify, SignJWT } from "jose";

/** Who is calling, as the auth interceptor verified it. */
export type Identity =
  | { readonly kind: "user"; readonly appId: string; readonly userId: string; readonly deviceId: string; readonly tokenId: string }
  | { readonly kind: "service"; readonly service: string }
  | { readonly kind: "admin" };

/** A short, loggable description of an identity, never including a credential. */
export function describeIdentity(identity: Identity | undefined): string {
  if (identity === undefined) return "anonymous";
  if (identity.kind === "user") return `user:${identity.appId}/${identity.userId}/${identity.deviceId}`;
  if (identity.kind === "service") return `service:${identity.service}`;
  return "admin";
}

/**
 * Turns a bearer credential into an identity, or undefined when it is not valid. The auth service supplies the
 * user-token verifier (EdDSA, keys from ListVerificationKeys); the mesh supplies service and admin credentials.
 */
export interface CredentialVerifier {
  verifyUser(token: string): Promise<Identity | undefined>;
  verifyService(token: string): Promise<Identity | undefined>;
  verifyAdmin(token: string): Promise<Identity | undefined>;
}

const issuer = "im-mesh";
const serviceAudience = "im-mesh/internal";

/**
 * Service credentials: short-lived JWTs (HS256 over the mesh secret from configuration) naming the calling
 * service. A user token never verifies as one, since it has a different audience and key.
 */
export class ServiceCredentials {
  private readonly key: Uint8Array;
  private cached: { token: string; renewAt: number } | undefined;
  private readonly verified = new Map<string, { identity: Identity; expiresAt: number }>();

  constructor(
    secret: string,
    private readonly service: string,
    private readonly ttlSeconds = 600,
  ) {
    if (secret.length < 32) throw new Error("the mesh secret must be at least 32 characters");
    this.key = new TextEncoder().encode(secret);
  }

  /** The service these credentials speak for (the identity of its in-process calls). */
  get serviceName(): string {
    return this.service;
  }

  /** A valid token for this service, renewed when two thirds of its life are over. */
  async token(): Promise<string> {
    const now = Date.now();
    if (this.cached && now < this.cached.renewAt) return this.cached.token;
    const token = await new SignJWT({ svc: this.service })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(issuer)
      .setAudience(serviceAudience)
      .setSubject(`service:${this.service}`)
      .setIssuedAt()
      .setExpirationTime(`${this.ttlSeconds}s`)
      .sign(this.key);
    this.cached = { token, renewAt: now + (this.ttlSeconds * 1000 * 2) / 3 };
    return token;
  }

  /**
   * Verifies another service's token with the same secret. A service reuses its token for minutes, so a verified
   * one is remembered until it expires: each mesh call costs a map lookup, not an HMAC and a JWT parse.
   */
  async verify(token: string): Promise<Identity | undefined> {
    const now = Date.now();
    const known = this.verified.get(token);
    if (known !== undefined && known.expiresAt > now) return known.identity;
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer, audience: serviceAudience, algorithms: ["HS256"] });
      if (typeof payload.svc !== "string") return undefined;
      const identity: Identity = { kind: "service", service: payload.svc };
      // Bounded: a flood of distinct valid tokens (only holders of the secret can make them) just starts it over.
      if (this.verified.size >= 256) this.verified.clear();
      this.verified.set(token, { identity, expiresAt: (payload.exp ?? 0) * 1000 });
      return identity;
    } catch {
      return undefined;
    }
  }
}

/** Compares two secrets in time independent of where they differ. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}

/**
 * The verifier of one process: service credentials through the mesh secret, the admin credential from
 * configuration, and user tokens through the auth service's verifier once it is plugged in.
 */
export function createMeshVerifier(options: {
  serviceCredentials: ServiceCredentials;
  adminToken?: string;
  verifyUser?: (token: string) => Promise<Identity | undefined>;
}): CredentialVerifier {
  return {
    verifyUser: async (token) => (options.verifyUser ? options.verifyUser(token) : undefined),
    verifyService: (token) => options.serviceCredentials.verify(token),
    verifyAdmin: async (token) => (options.adminToken !== undefined && sameSecret(token, options.adminToken) ? { kind: "admin" } : undefined),
  };
}

// Limits on the anonymous auth RPCs (SECURITY.md): how often an address may try to sign in, how many wrong
// passwords an account takes from one address and from addresses it never signed in from, and how many accounts
// an address and an app may register. Every bucket is a Kv token bucket, shared by all auth instances.
import type { BucketSpec, Kv } from "../../platform/kv/kv.js";
import { rateLimited } from "../../platform/rate-limiter.js";

/** How many sign-in attempts and failures are allowed, per what. */
export interface SignInLimits {
  /** Attempts from one client address, right or wrong (they cost a password hash each). */
  readonly perAddress: BucketSpec;
  /** Wrong passwords for one account from one address: only that pair waits, never the owner elsewhere. */
  readonly perAccountAddress: BucketSpec;
  /** Wrong passwords for one account from everywhere; past it, only addresses it signed in from before may try. */
  readonly perAccount: BucketSpec;
  /** How long an address the account signed in from stays known to it. */
  readonly knownAddressTtlMs: number;
}

/** 30 attempts per address (one more a second); 10 failures per account and address (one more every 90 s); 100 per account (one more every 36 s). */
export const signInDefaults: SignInLimits = {
  perAddress: { capacity: 30, refillPerSecond: 1 },
  perAccountAddress: { capacity: 10, refillPerSecond: 10 / 900 },
  perAccount: { capacity: 100, refillPerSecond: 100 / 3600 },
  knownAddressTtlMs: 30 * 24 * 3_600_000,
};

/** Registration limits; an absent one is not enforced. */
export interface RegistrationLimits {
  readonly perAddress?: BucketSpec;
  readonly perApp?: BucketSpec;
}

/** Tokens left in a bucket without taking any (a take of 0 refills it and says how many there are). */
async function tokens(kv: Kv, key: string, bucket: BucketSpec): Promise<number> {
  return (await kv.take(key, bucket, 0)).remaining;
}

/**
 * The sign-in guard: an attempt is admitted before its password is checked, and only failures are counted per
 * account, so a known username cannot be locked out by someone else: their failures lock only their own address,
 * and once an account's failures pile up from many addresses, the addresses it signed in from before still work.
 */
export class SignInGuard {
  constructor(
    private readonly kv: Kv,
    private readonly limits: SignInLimits = signInDefaults,
  ) {}

  /** Buckets by account: its id when the login names one (username and email share them), else the login as typed. */
  private keys(appId: string, login: string, accountId: string | undefined, address: string) {
    const subject = accountId ?? `login:${login}`;
    return { pair: `rl:login:pair:${appId}:${subject}:${address}`, account: `rl:login:account:${appId}:${subject}` };
  }

  private knownKey(appId: string, accountId: string, address: string): string {
    return `login:known:${appId}:${accountId}:${address}`;
  }

  /** Counts an attempt from the address, first of all; refused (ResourceExhausted with retry-after) past its limit. */
  async admitAddress(address: string): Promise<void> {
    const taken = await this.kv.take(`rl:login:address:${address}`, this.limits.perAddress);
    if (!taken.allowed) throw rateLimited("too many sign-in attempts from this address", taken.retryAfterMs);
  }

  /** Refuses an attempt on an account that may not be made now from this address; `accountId` when the login names one. */
  async admitAccount(appId: string, login: string, address: string, accountId: string | undefined): Promise<void> {
    const keys = this.keys(appId, login, accountId, address);
    const { perAccountAddress, perAccount } = this.limits;
    const pair = await tokens(this.kv, keys.pair, perAccountAddress);
    if (pair < 1) throw rateLimited("too many wrong passwords for this account from this address", ((1 - pair) / perAccountAddress.refillPerSecond) * 1000);
    const account = await tokens(this.kv, keys.account, perAccount);
    if (account >= 1) return;
    if (accountId !== undefined && (await this.kv.get(this.knownKey(appId, accountId, address))) !== null) return;
    throw rateLimited(
      "too many wrong passwords for this account; sign in from a device that signed in before, or wait",
      ((1 - account) / perAccount.refillPerSecond) * 1000,
    );
  }

  /** Counts a wrong password against the account from this address and from everywhere. */
  async failed(appId: string, login: string, accountId: string | undefined, address: string): Promise<void> {
    const keys = this.keys(appId, login, accountId, address);
    await Promise.all([this.kv.take(keys.pair, this.limits.perAccountAddress), this.kv.take(keys.account, this.limits.perAccount)]);
  }

  /** Remembers the address as one the account signs in from. */
  async succeeded(appId: string, accountId: string, address: string): Promise<void> {
    await this.kv.set(this.knownKey(appId, accountId, address), "1", { ttlMs: this.limits.knownAddressTtlMs });
  }
}

/** Refuses a registration past the per-address or per-app limit (ResourceExhausted with retry-after). */
export async function admitRegistration(kv: Kv, limits: RegistrationLimits, appId: string, address: string): Promise<void> {
  if (limits.perAddress !== undefined) {
    const taken = await kv.take(`rl:register:address:${appId}:${address}`, limits.perAddress);
    if (!taken.allowed) throw rateLimited("too many accounts registered from this address", taken.retryAfterMs);
  }
  if (limits.perApp !== undefined) {
    const taken = await kv.take(`rl:register:app:${appId}`, limits.perApp);
    if (!taken.allowed) throw rateLimited("this app is registering too many accounts right now", taken.retryAfterMs);
  }
}

import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from "node:crypto";

/** scrypt cost parameters; log2 of N is stored so the cost can be raised later and old hashes still verify. */
export interface ScryptParams {
  readonly logN: number;
  readonly r: number;
  readonly p: number;
}

/** Today's cost: N = 2^15, r = 8, p = 1 (about 32 MiB and tens of milliseconds per hash). */
export const currentParams: ScryptParams = { logN: 15, r: 8, p: 1 };

const keyLength = 32;
const format = /^scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{40,64})$/;

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.logN;
  return new Promise((resolve, reject) =>
    scryptCallback(password.normalize("NFKC"), salt, keyLength, { N, r: params.r, p: params.p, maxmem: 256 * N * params.r }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/** Hashes a password as `scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64url), with a fresh 16-byte salt. */
export async function hashPassword(password: string, params: ScryptParams = currentParams): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, params);
  return `scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${salt.toString("base64url")}$${key.toString("base64url")}`;
}

/** The outcome of checking a password: whether it matched, and whether the stored hash should be upgraded. */
export interface PasswordCheck {
  readonly ok: boolean;
  readonly needsRehash: boolean;
}

const dummyHash = "scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/**
 * Checks a password against a stored hash in constant time. A missing or malformed hash still costs one full
 * derivation (against a dummy), so the time taken does not tell whether the account exists.
 */
export async function verifyPassword(password: string, stored: string | undefined): Promise<PasswordCheck> {
  const match = format.exec(stored ?? "") ?? format.exec(dummyHash)!;
  const params = { logN: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  if (params.logN < 10 || params.logN > 20 || params.r < 1 || params.r > 32 || params.p < 1 || params.p > 16) {
    return { ok: false, needsRehash: false };
  }
  const expected = Buffer.from(match[5]!, "base64url");
  const actual = await derive(password, Buffer.from(match[4]!, "base64url"), params);
  const ok = stored !== undefined && format.test(stored) && expected.length === actual.length && timingSafeEqual(expected, actual);
  const weaker = params.logN < currentParams.logN || params.r < currentParams.r || params.p < currentParams.p;
  return { ok, needsRehash: ok && weaker };
}

/** Why a password is refused at registration, or undefined when it is acceptable. */
export function passwordWeakness(password: string, context: { username: string; email?: string | null }): string | undefined {
  if ([...password].length < 8) return "the password needs at least 8 characters";
  if (new TextEncoder().encode(password).length > 128) return "the password must be at most 128 bytes";
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  if ([...password].length < 12 && classes < 2) return "use at least 12 characters, or mix letters with digits or symbols";
  if (new Set(password).size < 4) return "the password repeats too few different characters";
  const lower = password.toLowerCase();
  const local = context.email?.split("@")[0]?.toLowerCase();
  if (lower.includes(context.username.toLowerCase()) || (local !== undefined && local.length >= 3 && lower.includes(local))) {
    return "the password must not contain the username or email";
  }
  return undefined;
}

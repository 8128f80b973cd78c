// The hot path of every call is checking its access token. This measures verifications per second of our
// verifier (signature, claims, then the revocation lookups in kv) against jose's bare signature check, in the same
// run, and sign-ins per second (dominated by scrypt, deliberately slow).
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { importJWK, jwtVerify } from "jose";
import { AuthService, LoginRequestSchema, Platform } from "../gen/im/auth/v1/auth_pb.js";
import { AccessTokenVerifier, Revocations } from "../mesh/user-tokens.js";
import type { Kv } from "../platform/kv/kv.js";
import { MemoryKv } from "../platform/kv/memory-kv.js";
import { RedisKv } from "../platform/kv/redis-kv.js";
import { demo, seedDemo } from "../platform/store/demo-data.js";
import { MemoryTables } from "../platform/store/memory-tables.js";
import { AccessTokenIssuer } from "../services/auth/access-tokens.js";
import { MemoryAccountStore } from "../services/auth/account-store.js";
import { createAuthServices } from "../services/auth/auth-service.js";
import { hashPassword } from "../services/auth/passwords.js";
import { MemoryRefreshTokenStore } from "../services/auth/refresh-token-store.js";
import { latencyHistogram, printTable, saveResult } from "./report.js";

/** Runs `op` from `concurrency` loops for `seconds`; returns ops/s and latency percentiles in µs. */
async function measure(seconds: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<Record<string, number>> {
  const histogram = latencyHistogram();
  const end = Date.now() + seconds * 1000;
  let count = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const t0 = process.hrtime.bigint();
        await op(count++);
        histogram.recordValue(Number(process.hrtime.bigint() - t0) / 1000);
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const result = { "ops/s": Math.round(count / elapsed), "p50 µs": histogram.getValueAtPercentile(50), "p99 µs": histogram.getValueAtPercentile(99) };
  histogram.destroy();
  return result;
}

/** Runs the scenario; `smoke` shortens it to a second or two for CI (figures then mean little). */
export async function authTokensBench(options: { smoke: boolean }): Promise<void> {
  const seconds = options.smoke ? 0.3 : 3;
  const issuer = await AccessTokenIssuer.generate();
  const subject = { appId: demo.appId, userId: demo.users[0]!.id, deviceId: "bench" };
  const tokens = await Promise.all(Array.from({ length: 64 }, () => issuer.issue(subject).then((t) => t.token)));
  const publicKey = await importJWK(issuer.publicKeys()[0]!.jwk, "EdDSA");
  const kvs: [string, Kv][] = [["memory kv", new MemoryKv()]];
  const redisUrl = process.env.IM_REDIS_URL;
  if (redisUrl) kvs.push(["Redis", await RedisKv.connect(redisUrl)]);
  const rows: Record<string, string | number>[] = [];
  const add = (what: string, concurrency: number, r: Record<string, number>) => rows.push({ what, concurrency, ...r });
  try {
    const bare = await measure(seconds, 32, (i) => jwtVerify(tokens[i % tokens.length]!, publicKey, { algorithms: ["EdDSA"] }));
    add("jose jwtVerify, one key (baseline)", 32, bare);
    const plain = new AccessTokenVerifier(issuer.publicKeys());
    add("our verifier, no revocation check", 32, await measure(seconds, 32, (i) => plain.verify(tokens[i % tokens.length]!)));
    for (const [name, kv] of kvs) {
      const revocations = new Revocations(kv);
      const checked = new AccessTokenVerifier(issuer.publicKeys(), (q) => revocations.isRevoked(q));
      add(`our verifier + revocations in ${name}`, 32, await measure(seconds, 32, (i) => checked.verify(tokens[i % tokens.length]!)));
    }
    for (const row of rows) row["vs baseline"] = `${Math.round((Number(row["ops/s"]) / bare["ops/s"]!) * 100)}%`;

    // Sign-ins: each account signs in once (the per-account limiter allows 10 per 15 minutes).
    const tables = new MemoryTables();
    seedDemo(tables);
    const accounts = new MemoryAccountStore(tables);
    const hash = await hashPassword(demo.password);
    const n = options.smoke ? 8 : 200;
    for (let i = 0; i < n; i++) {
      await accounts.createAccount({ appId: demo.appId, id: randomUUID(), username: `bench${i}`, email: null, displayName: `bench ${i}`, passwordHash: hash });
    }
    const kv = new MemoryKv();
    const auth = createAuthServices({
      accounts,
      refreshTokens: new MemoryRefreshTokenStore(tables),
      issuer,
      verifier: new AccessTokenVerifier(issuer.publicKeys()),
      revocations: new Revocations(kv),
      kv,
    });
    const client = createClient(AuthService, createRouterTransport((r) => r.service(AuthService, auth.auth)));
    let next = 0;
    const loginSeconds = options.smoke ? 0.5 : 5;
    const logins = await measure(loginSeconds, 4, async () => {
      const i = next++ % n;
      await client.login(
        create(LoginRequestSchema, { apiKey: demo.apiKey, login: { case: "username", value: `bench${i}` }, password: demo.password, device: { deviceId: randomUUID(), platform: Platform.CLI } }),
        { headers: { "x-forwarded-for": `10.0.${i >> 8}.${i & 255}` } },
      );
    });
    rows.push({ what: "Login (scrypt ln=15, in-process)", concurrency: 4, ...logins, "vs baseline": "-" });
  } finally {
    for (const [, kv] of kvs) await kv.close();
  }
  console.log(`\nauth-tokens: access-token verifications and sign-ins per second on one core${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable(rows);
  console.log(`saved ${saveResult("auth-tokens", { smoke: options.smoke, rows })}`);
}

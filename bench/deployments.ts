// What the scenarios measure, started in processes of their own: the all-in-one process (in-memory adapters) with
// a signing key the bench knows, so that it can mint access tokens for thousands of devices without scrypt logins.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { demo } from "../platform/store/demo-data.js";
import { AccessTokenIssuer } from "../services/auth/access-tokens.js";

const infraVariables = ["IM_ETCD_ENDPOINTS", "IM_MYSQL_URL", "IM_REDIS_URL", "IM_KAFKA_BROKERS"];

/**
 * The abuse limits (SECURITY.md) switched off, and an operator credential for /metrics on the gateways: a bench
 * drives thousands of users of one app from one address, which is what the limits are there to refuse.
 */
export const benchEnv = {
  IM_SEND_RATE_USER: "off",
  IM_SEND_RATE_APP: "off",
  IM_REGISTER_RATE_ADDRESS: "off",
  IM_REGISTER_RATE_APP: "off",
  IM_ADMIN_TOKEN: "bench-operator-credential-not-a-secret-0001",
} as const;

/** A deployment under measurement: where clients connect, the process to read memory and CPU from, and its keys. */
export interface BenchDeployment {
  readonly urls: string[];
  /** The process holding the (first) gateway. */
  readonly gatewayPid: number;
  /** IM_AUTH_SIGNING_KEYS of the deployment. */
  readonly signingKeys: JWK[];
  stop(): Promise<void>;
}

/** A fresh private signing key, as IM_AUTH_SIGNING_KEYS wants it. */
export async function newSigningKeys(): Promise<JWK[]> {
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  return [{ ...(await exportJWK(privateKey)), kid: randomUUID() }];
}

/**
 * The all-in-one process on a free port with nothing but memory behind it; `nodeArgs` go to node itself (--cpu-prof),
 * `env` over benchEnv (a variable set to undefined is left out, so the server's default applies).
 */
export async function startAllInOne(nodeArgs: readonly string[] = [], env: Record<string, string | undefined> = {}): Promise<BenchDeployment> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const signingKeys = await newSigningKeys();
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !infraVariables.includes(k)));
  const merged = { ...inherited, ...benchEnv, IM_GATEWAY_PORT: "0", IM_LOG_LEVEL: "warn", IM_AUTH_SIGNING_KEYS: JSON.stringify(signingKeys), ...env };
  const server = spawn(process.execPath, [...nodeArgs, "--import", "tsx", "services/all-in-one.ts"], {
    cwd: root,
    env: Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    server.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /at (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    server.once("exit", (code) => reject(new Error(`all-in-one exited with ${code}`)));
  });
  const exited = new Promise((r) => server.once("exit", r));
  return { urls: [url], gatewayPid: server.pid!, signingKeys, stop: async () => void (server.kill("SIGTERM"), await exited) };
}

/** Access tokens of the demo app for `count` made-up users (one device each), signed with the deployment's key. */
export async function mintTokens(signingKeys: JWK[], userIds: readonly string[]): Promise<string[]> {
  const issuer = await AccessTokenIssuer.fromPrivateJwks(signingKeys);
  const tokens: string[] = [];
  for (const userId of userIds) tokens.push((await issuer.issue({ appId: demo.appId, userId, deviceId: "bench" })).token);
  return tokens;
}

// `npm run keygen`: prints a new private Ed25519 signing key as IM_AUTH_SIGNING_KEYS wants it. To rotate, put the
// new key first and keep the old one after it for 15 minutes (the life of the tokens it signed).
import { randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair } from "jose";

const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: "EdDSA" };
process.stdout.write(`${JSON.stringify([jwk])}\n`);

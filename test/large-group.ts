// A large group on a mesh deployment, for the scale test and the group-fanout benchmark: M members (bulk-inserted
// users of the demo app), D of them online on devices spread over the gateways, and one message from the owner
// timed until every online device has it.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { JWK } from "jose";
import mysql from "mysql2/promise";
import { SessionSchema } from "../gen/im/auth/v1/auth_pb.js";
import { ImClient } from "../client/im-client.js";
import { demo } from "../platform/store/demo-data.js";
import { AccessTokenIssuer } from "../services/auth/access-tokens.js";
import { eventually } from "./eventually.js";
import type { MeshDeployment } from "./mesh-deployment.js";

/** What one run measured. */
export interface LargeGroupResult {
  readonly members: number;
  readonly onlineDevices: number;
  /** Time to build the group (CreateGroup and AddMembers in batches of 1,000). */
  readonly setupMs: number;
  /** From the send until the last online device had the message. */
  readonly allReceivedMs: number;
  /** Online deliveries per second over that time. */
  readonly deliveriesPerSecond: number;
  /** How many online devices got the message (all of them, or the run failed). */
  readonly received: number;
}

/** Waits until the offline inbox stops growing for two seconds (or the time is up). */
async function settleOfflineInbox(url: string, timeoutMs: number): Promise<void> {
  const conn = await mysql.createConnection({ uri: url });
  try {
    const deadline = Date.now() + timeoutMs;
    let last = -1;
    let stableSince = Date.now();
    while (Date.now() < deadline) {
      const [rows] = await conn.query("SELECT COUNT(*) AS n FROM offline_messages");
      const n = Number((rows as { n: number }[])[0]!.n);
      if (n !== last) {
        last = n;
        stableSince = Date.now();
      } else if (Date.now() - stableSince >= 2000) return;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await conn.end();
  }
}

/** Runs the scenario on a running deployment; the owner is alice. */
export async function runLargeGroup(mesh: MeshDeployment, options: { members: number; online: number; timeoutMs?: number; progress?: (step: string) => void }): Promise<LargeGroupResult> {
  const progress = options.progress ?? (() => {});
  const [alice] = demo.users;
  const userIds = Array.from({ length: options.members - 1 }, () => randomUUID());
  const conn = await mysql.createConnection({ uri: mesh.env.IM_MYSQL_URL! });
  try {
    for (let i = 0; i < userIds.length; i += 1000) {
      const part = userIds.slice(i, i + 1000);
      await conn.query("INSERT INTO users (app_id, id, username, display_name, password_hash) VALUES ?", [
        part.map((id) => [demo.appId, id, `m${id.replaceAll("-", "").slice(0, 20)}`, "Member", demo.passwordHash]),
      ]);
    }
  } finally {
    await conn.end();
  }
  const clients: ImClient[] = [];
  try {
    const owner = new ImClient({ baseUrl: mesh.urls[0]!, apiKey: demo.apiKey, deviceId: randomUUID() });
    clients.push(owner);
    await owner.login(alice!.username, demo.password);
    await owner.connect();
    const as = { headers: owner.api.headers(), timeoutMs: 60_000 };
    const setupStart = Date.now();
    const { group } = await owner.api.group.createGroup({ requestId: randomUUID(), name: "Everyone", memberIds: userIds.slice(0, 999) }, as);
    for (let i = 999; i < userIds.length; i += 1000) {
      await owner.api.group.addMembers({ groupId: group!.groupId, userIds: userIds.slice(i, i + 1000) }, as);
    }
    // The group's system messages reach the offline members' inboxes through offline_msg; wait until those writes
    // are done, so the devices connect to a settled system and the timing is of the fan-out alone.
    await settleOfflineInbox(mesh.env.IM_MYSQL_URL!, 180_000);
    const setupMs = Date.now() - setupStart;
    progress(`group of ${options.members} built in ${setupMs} ms`);

    // Online devices sign in in bulk with tokens from the deployment's own signing key (scrypt logins would take
    // minutes), spread round robin over the gateways.
    const issuer = await AccessTokenIssuer.fromPrivateJwks(JSON.parse(mesh.env.IM_AUTH_SIGNING_KEYS!) as JWK[]);
    const marker = `everyone ${randomUUID()}`;
    const receivedAt: number[] = [];
    const online = userIds.slice(0, options.online);
    for (let i = 0; i < online.length; i += 50) {
      await Promise.all(
        online.slice(i, i + 50).map(async (userId, k) => {
          const deviceId = randomUUID();
          const issued = await issuer.issue({ appId: demo.appId, userId, deviceId });
          const c = new ImClient(
            { baseUrl: mesh.urls[(i + k) % mesh.urls.length]!, apiKey: demo.apiKey, deviceId },
            { message: (m) => m.content?.kind.case === "text" && m.content.kind.value.text === marker && receivedAt.push(Date.now()) },
          );
          c.restore(create(SessionSchema, { appId: demo.appId, userId, deviceId, tokens: { accessToken: issued.token, accessExpiresAt: timestampFromDate(issued.expiresAt) } }));
          clients.push(c);
          await c.connect();
        }),
      );
    }
    progress(`${online.length} devices connected`);
    // Let the devices drain their offline inboxes (the group's system messages) before timing.
    await new Promise((r) => setTimeout(r, 2000));
    const sentAt = Date.now();
    await owner.sendText({ conversationId: group!.conversationId }, marker);
    await eventually(`all ${online.length} online devices got the message`, () => receivedAt.length >= online.length, options.timeoutMs ?? 60_000).catch(() => {});
    const last = receivedAt.length > 0 ? Math.max(...receivedAt) : Date.now();
    const allReceivedMs = last - sentAt;
    return {
      members: options.members,
      onlineDevices: online.length,
      setupMs,
      allReceivedMs,
      deliveriesPerSecond: Math.round(receivedAt.length / Math.max(0.001, allReceivedMs / 1000)),
      received: receivedAt.length,
    };
  } finally {
    for (const c of clients) c.close();
  }
}

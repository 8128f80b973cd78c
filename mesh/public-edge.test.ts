// The public edge (issue #18, findings 7 and 14): /metrics needs the operator's credential there and stays open on
// internal ports, and the client's address is appended to x-forwarded-for so that only configured trusted proxies
// can speak for their clients.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import { clientAddress, TrustedProxies } from "./client-address.js";
import { createMeshVerifier, ServiceCredentials } from "./identity.js";
import { createMetricsRegistry } from "./metrics.js";
import { mount, startServer, type RunningServer } from "./server.js";

const adminToken = "operator-credential-for-the-edge-test-01";
const userToken = "a-valid-user-token";

describe("public edge", () => {
  const servers: RunningServer[] = [];
  const start = (publicEdge: boolean) =>
    startServer({
      name: publicEdge ? "edge" : "internal",
      port: 0,
      publicEdge,
      metrics: createMetricsRegistry(publicEdge ? "edge" : "internal"),
      verifier: createMeshVerifier({
        serviceCredentials: new ServiceCredentials("s".repeat(32), "edge-test"),
        adminToken,
        verifyUser: async (t) => (t === userToken ? { kind: "user", appId: "a", userId: "u", deviceId: "d", tokenId: "t" } : undefined),
      }),
      services: [
        // Answers with the x-forwarded-for it was given, as the username.
        mount(UserService, { getUser: async (_req, ctx) => ({ user: { username: ctx.requestHeader.get("x-forwarded-for") ?? "" } }) }),
      ],
    }).then((s) => (servers.push(s), s));
  after(async () => {
    for (const s of servers.splice(0)) await s.close(100);
  });

  it("serves /metrics on the public edge only with the operator's credential, and openly on internal ports", async () => {
    const edge = await start(true);
    const internal = await start(false);
    const get = (url: string, token?: string) => fetch(`${url}/metrics`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
    expect((await get(edge.url)).status, "anonymous").to.equal(401);
    expect((await get(edge.url, userToken)).status, "a user's token").to.equal(401);
    expect((await get(edge.url, "operator-credential-guess-000000000")).status, "a wrong credential").to.equal(401);
    const allowed = await get(edge.url, adminToken);
    expect(allowed.status).to.equal(200);
    expect(await allowed.text()).to.match(/process_cpu_user_seconds_total/);
    expect((await get(internal.url)).status, "internal ports stay open for Prometheus").to.equal(200);
  });

  it("appends the socket's address to x-forwarded-for on the edge, so a forged value never stands alone", async () => {
    const edge = await start(true);
    const users = createClient(UserService, createGrpcTransport({ baseUrl: edge.url }));
    const seen = async (headers: Record<string, string>) =>
      (await users.getUser({ userId: "00000000-0000-4000-8000-000000000001" }, { headers: { authorization: `Bearer ${userToken}`, ...headers } })).user!.username;
    expect(await seen({})).to.equal("127.0.0.1");
    const forged = await seen({ "x-forwarded-for": "203.0.113.9" });
    expect(forged).to.equal("203.0.113.9, 127.0.0.1");
    expect(clientAddress(forged, new TrustedProxies()), "without trusted proxies, the socket's address").to.equal("127.0.0.1");
    expect(clientAddress(forged, new TrustedProxies(["127.0.0.0/8"])), "behind a trusted proxy, the address it saw").to.equal("203.0.113.9");
  });
});

describe("clientAddress", () => {
  it("walks x-forwarded-for from the right past trusted proxies only", () => {
    const trusted = new TrustedProxies(["10.0.0.0/8", "fd00::/8", "192.0.2.7"]);
    expect(clientAddress("198.51.100.1, 10.1.2.3", trusted)).to.equal("198.51.100.1");
    expect(clientAddress("6.6.6.6, 198.51.100.1, 192.0.2.7, 10.1.2.3", trusted), "a forged hop left of the client is ignored").to.equal("198.51.100.1");
    expect(clientAddress("198.51.100.1, ::ffff:10.0.0.1", trusted), "IPv4-mapped addresses").to.equal("198.51.100.1");
    expect(clientAddress("2001:db8::1, fd12::1", trusted)).to.equal("2001:db8::1");
    expect(clientAddress("10.0.0.1, 10.0.0.2", trusted), "all trusted: the leftmost").to.equal("10.0.0.1");
    expect(clientAddress("198.51.100.1, 203.0.113.5", trusted), "an untrusted last hop is the client").to.equal("203.0.113.5");
    expect(clientAddress(null, trusted)).to.equal("unknown");
    expect(() => new TrustedProxies(["10.0.0.0/33"])).to.throw(/prefix/);
    expect(() => new TrustedProxies(["proxy.example"])).to.throw(/not an IP/);
  });
});

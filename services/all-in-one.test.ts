// `npm start` as a new user runs it: the all-in-one process starts with the demo data, alice signs in with the
// documented password and reads her profile, and SIGTERM drains it to exit code 0.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { AuthService, Platform } from "../gen/im/auth/v1/auth_pb.js";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import { demo } from "../platform/store/demo-data.js";

const root = fileURLToPath(new URL("..", import.meta.url));

function withoutInfra(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const infra = ["IM_ETCD_ENDPOINTS", "IM_MYSQL_URL", "IM_REDIS_URL", "IM_KAFKA_BROKERS", "IM_MESH_SECRET", "IM_AUTH_SIGNING_KEYS"];
  return Object.fromEntries(Object.entries(env).filter(([k]) => !infra.includes(k)));
}

/** Starts the all-in-one process on a free port and resolves with its URL once it says it is running. */
async function startAllInOne(): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "services/all-in-one.ts"], {
    cwd: root,
    // A fresh machine: no infrastructure variables, so every adapter is the in-memory one.
    env: { ...withoutInfra(process.env), IM_GATEWAY_PORT: "0", IM_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /is running \(all-in-one, in-memory adapters\) at (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    void exited.then((code) => reject(new Error(`npm start exited with ${code}:\n${out}`)));
  });
  return { child, url, exited };
}

describe("npm start (all-in-one process)", function () {
  this.timeout(30_000);

  it("serves the demo data: alice signs in and reads her profile, and SIGTERM exits 0", async () => {
    const { child, url, exited } = await startAllInOne();
    try {
      // HTTP/1.1 Connect, as a browser or curl would use it.
      const transport = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
      const { session } = await createClient(AuthService, transport).login({
        apiKey: demo.apiKey,
        login: { case: "username", value: "alice" },
        password: demo.password,
        device: { deviceId: "test", name: "test", platform: Platform.CLI },
      });
      const me = await createClient(UserService, transport).getUser(
        { userId: session!.userId },
        { headers: { authorization: `Bearer ${session!.tokens!.accessToken}` } },
      );
      expect(me.user).to.include({ username: "alice", displayName: "Alice", email: "alice@example.com" });
      child.kill("SIGTERM");
      expect(await exited).to.equal(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("lets a @grpc/grpc-js client register, sign in and fetch its own profile", async () => {
    const { child, url, exited } = await startAllInOne();
    type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: any) => void) => void;
    const def = protoLoader.loadSync(["im/auth/v1/auth.proto", "im/user/v1/user.proto"], { includeDirs: [`${root}/proto`, `${root}/.run/proto-deps`] });
    const pkg = grpc.loadPackageDefinition(def) as any;
    const address = url.replace("http://", "");
    const authClient = new pkg.im.auth.v1.AuthService(address, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Unary>;
    const userClient = new pkg.im.user.v1.UserService(address, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Unary>;
    const call = (client: Record<string, Unary>, method: string, req: object, md = new grpc.Metadata()) =>
      new Promise<any>((resolve, reject) => client[method]!(req, md, (err, res) => (err ? reject(err) : resolve(res))));
    try {
      const device = { deviceId: "grpc-js", name: "grpc-js", platform: "PLATFORM_SERVER" };
      const registered = await call(authClient, "Register", { apiKey: demo.apiKey, username: "zed", password: "correct horse 42", email: "zed@example.com", device });
      const loggedIn = await call(authClient, "Login", { apiKey: demo.apiKey, username: "zed", password: "correct horse 42", device });
      expect(loggedIn.session.userId).to.equal(registered.session.userId);
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${loggedIn.session.tokens.accessToken}`);
      const me = await call(userClient, "GetUser", { userId: loggedIn.session.userId }, md);
      expect(me.user).to.include({ username: "zed", email: "zed@example.com", displayName: "zed" });
      const refused = await call(userClient, "GetUser", { userId: loggedIn.session.userId }).catch((e: grpc.ServiceError) => e);
      expect((refused as grpc.ServiceError).code).to.equal(grpc.status.UNAUTHENTICATED);
    } finally {
      authClient.close();
      userClient.close();
      child.kill("SIGTERM");
      await exited;
    }
  });
});

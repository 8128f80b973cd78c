// `npm start` as a new user runs it: the all-in-one process starts with the demo data, alice signs in with the
// documented password and reads her profile, and SIGTERM drains it to exit code 0.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { AuthService, Platform } from "../gen/im/auth/v1/auth_pb.js";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import { demo } from "../platform/store/demo-data.js";

describe("npm start (all-in-one process)", function () {
  this.timeout(30_000);

  it("serves the demo data: alice signs in and reads her profile, and SIGTERM exits 0", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "services/all-in-one.ts"], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: { ...process.env, IM_GATEWAY_PORT: "0", IM_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
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
});

// A refused or failing call must still get a request id, a metric and a mapped error, on the network server's
// interceptor chain and on the in-process transport, which applies the same rules without the chain.
import { Code, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { pino } from "pino";
import { AuthService } from "../gen/im/auth/v1/auth_pb.js";
import { EchoService } from "../gen/im/testing/v1/echo_pb.js";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import { rpcError } from "../test/rpc-errors.js";
import { requestIdHeader } from "./call-scope.js";
import { createLocalTransport } from "./bootstrap.js";
import { createMeshVerifier, ServiceCredentials } from "./identity.js";
import { createMetricsRegistry } from "./metrics.js";
import { mount } from "./server.js";

describe("server interceptor chain", () => {
  const metrics = createMetricsRegistry("chain-test");
  const credentials = new ServiceCredentials("c".repeat(32), "chain-test");
  const { transport } = createLocalTransport(
    [
      mount(EchoService, {
        async echo() {
          throw new Error("driver said: password=hunter2 at db.js:42");
        },
      }),
      mount(UserService, {}),
      mount(AuthService, {}),
    ],
    { logger: pino({ level: "silent" }), metrics, verifier: createMeshVerifier({ serviceCredentials: credentials }) },
  );

  it("answers an unexpected error as Internal naming the request id the response carries, and nothing else", async () => {
    const headers = { authorization: `Bearer ${await credentials.token()}`, [requestIdHeader]: "req-42" };
    const err = await rpcError(createClient(EchoService, transport).echo({ text: "x" }, { headers }));
    expect(err.code).to.equal(Code.Internal);
    expect(err.rawMessage).to.equal("internal error (request id req-42)");
    expect(err.metadata.get(requestIdHeader)).to.equal("req-42");
  });

  it("counts refused calls in the RED metrics and gives them a request id", async () => {
    const err = await rpcError(createClient(UserService, transport).getUser({ userId: "a11ce000-0000-4000-8000-000000000001" }));
    expect(err.code).to.equal(Code.Unauthenticated);
    expect(err.metadata.get(requestIdHeader)).to.match(/^[0-9a-f-]{36}$/);
    // In-process calls are not validated again (protovalidate ran where the request entered): it reaches the handler.
    const unvalidated = await rpcError(createClient(AuthService, transport).login({ apiKey: "" }));
    expect(unvalidated.code).to.equal(Code.Unimplemented);
    const text = await metrics.metrics();
    expect(text).to.match(/rpc_server_requests_total\{rpc="im.user.v1.UserService\/GetUser",code="Unauthenticated",process="chain-test"\} 1/);
    expect(text).to.match(/rpc_server_requests_total\{rpc="im.auth.v1.AuthService\/Login",code="Unimplemented",process="chain-test"\} 1/);
  });
});

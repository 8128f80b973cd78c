// The transport ceiling, in its own process: a bare connect-node HTTP/2 server (no interceptors, no auth, no
// storage) serving the gateway's Connect stream. It welcomes each stream, answers a send with the message a
// delivery would carry (the same frame sizes as ours) and a ping with a pong. Prints "ready <port>".
import http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { GatewayService, type ConnectRequest, type ConnectResponse, ConnectResponseSchema } from "../gen/im/gateway/v1/gateway_pb.js";

/** Answers every frame of one stream at once, in order. */
async function* echo(requests: AsyncIterable<ConnectRequest>): AsyncGenerator<ConnectResponse> {
  yield create(ConnectResponseSchema, { frame: { body: { case: "welcome", value: { gatewayId: "transport", heartbeatIntervalMs: 30_000 } } } });
  let seq = 0n;
  for await (const { frame } of requests) {
    if (frame?.body.case === "send") {
      const send = frame.body.value;
      seq++;
      yield create(ConnectResponseSchema, {
        frame: {
          replyTo: frame.frameId,
          body: { case: "message", value: { conversationId: send.target.value ?? "", seq, clientMsgId: send.clientMsgId, senderId: "transport", content: send.content } },
        },
      });
    } else if (frame?.body.case === "ping") {
      yield create(ConnectResponseSchema, { frame: { replyTo: frame.frameId, body: { case: "pong", value: { clientTimeMs: frame.body.value.clientTimeMs } } } });
    }
  }
}

const routes = (router: ConnectRouter) => router.service(GatewayService, { connect: echo }, {});
const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, connectNodeAdapter({ routes }));
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`ready ${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));

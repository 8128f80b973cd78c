// A gateway client written from the protos alone, on node:http2 with gRPC framing: no SDK, no Connect client. It
// sees exactly what the gateway writes (repeats and order included) and can stop reading or reset its stream.
import http2 from "node:http2";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { type ClientFrameSchema, ConnectRequestSchema, ConnectResponseSchema, type ServerFrame } from "../gen/im/gateway/v1/gateway_pb.js";

/** A raw Connect stream to a gateway. */
export interface RawStream {
  /** Every frame received, in order. */
  readonly frames: ServerFrame[];
  /** Resolves when the stream has ended, for whatever reason. */
  readonly ended: Promise<void>;
  send(frame: MessageInitShape<typeof ClientFrameSchema>): void;
  /** Stops reading: the HTTP/2 flow-control window fills and the gateway's writes block. */
  pause(): void;
  /** Ends the connection abruptly (RST_STREAM, then the session is destroyed), as a crashed client would. */
  reset(): void;
  /** Seqs of the message frames of one conversation, in arrival order. */
  seqs(conversationId: string): bigint[];
}

function envelope(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + bytes.byteLength);
  new DataView(out.buffer).setUint32(1, bytes.byteLength);
  out.set(bytes, 5);
  return out;
}

/**
 * Opens GatewayService/Connect with the token; `windowBytes` shrinks the client's receive window so a paused stream
 * blocks the gateway after that many bytes; `autoAck` acknowledges every message frame as it arrives.
 */
export function openRawStream(url: string, token: string, options: { windowBytes?: number; autoAck?: boolean } = {}): RawStream {
  const session = http2.connect(url, options.windowBytes ? { settings: { initialWindowSize: options.windowBytes } } : {});
  session.on("error", () => {});
  const req = session.request({ ":method": "POST", ":path": "/im.gateway.v1.GatewayService/Connect", "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}` });
  const frames: ServerFrame[] = [];
  let pending = Buffer.alloc(0);
  const send = (frame: MessageInitShape<typeof ClientFrameSchema>) => {
    if (!req.closed && !req.destroyed) req.write(envelope(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { frame }))));
  };
  req.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const size = pending.readUInt32BE(1);
      if (pending.length < 5 + size) break;
      const frame = fromBinary(ConnectResponseSchema, pending.subarray(5, 5 + size)).frame;
      pending = pending.subarray(5 + size);
      if (frame === undefined) continue;
      frames.push(frame);
      if (options.autoAck && frame.body.case === "message") send({ body: { case: "ack", value: { conversationId: frame.body.value.conversationId, seq: frame.body.value.seq } } });
    }
  });
  req.on("error", () => {});
  const ended = new Promise<void>((resolve) => req.once("close", () => resolve()));
  void ended.then(() => session.close());
  return {
    frames,
    ended,
    send,
    pause: () => req.pause(),
    reset: () => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      session.destroy();
    },
    seqs: (conversationId) => frames.flatMap((f) => (f.body.case === "message" && f.body.value.conversationId === conversationId ? [f.body.value.seq] : [])),
  };
}

// The request side of one Connect stream of the SDK.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ConnectRequestSchema, type ConnectRequest } from "../gen/im/gateway/v1/gateway_pb.js";

/** A frame as the SDK writes it (an init shape, so callers do not build messages). */
export type FrameInit = MessageInitShape<typeof ConnectRequestSchema>;

/**
 * The frames the client sends on one stream, in order, until ended; each stream has its own, so a stream that is
 * going away can never end or take the frames of the stream that replaced it.
 */
export class RequestFrames implements AsyncIterable<ConnectRequest> {
  private readonly queue: ConnectRequest[] = [];
  private wake: (() => void) | undefined;
  private ended = false;

  push(frame: FrameInit): void {
    this.queue.push(create(ConnectRequestSchema, frame));
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ConnectRequest> {
    for (;;) {
      while (this.queue.length > 0) yield this.queue.shift()!;
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

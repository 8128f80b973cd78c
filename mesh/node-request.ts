import type http from "node:http";
import http2 from "node:http2";
import { createContextKey } from "@connectrpc/connect";

/**
 * The Node request behind a call, for handlers of long-lived streams that must end a stream whose writes are stuck
 * (a peer that stopped reading): connect-node's write waits for 'drain' or 'error', never for 'close'.
 */
export const nodeRequestKey = createContextKey<http.IncomingMessage | http2.Http2ServerRequest | undefined>(undefined, { description: "node request" });

/** Ends the transport of a call at once: its HTTP/2 stream is reset, an HTTP/1.1 call's socket destroyed. */
export function destroyTransport(req: http.IncomingMessage | http2.Http2ServerRequest | undefined): void {
  if (req === undefined) return;
  if ("stream" in req) {
    if (!req.stream.destroyed) req.stream.close(http2.constants.NGHTTP2_CANCEL);
  } else req.socket.destroy();
}

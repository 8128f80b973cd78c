// The SDK's default way to a gateway: gRPC over HTTP/2 (prior knowledge for http:, ALPN h2 for https:).
import net from "node:net";
import tls from "node:tls";
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

/**
 * A gRPC transport over HTTP/2 with Nagle's algorithm off: chat frames are small, and with it on a frame can wait
 * for the acknowledgement of the previous one.
 */
export function grpcTransport(baseUrl: string): Transport {
  const url = new URL(baseUrl);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const createConnection = () =>
    url.protocol === "https:"
      ? tls.connect({ host: url.hostname, port, servername: url.hostname, ALPNProtocols: ["h2"] }).setNoDelay(true)
      : net.connect({ host: url.hostname, port, noDelay: true });
  return createGrpcTransport({ baseUrl, nodeOptions: { createConnection } });
}

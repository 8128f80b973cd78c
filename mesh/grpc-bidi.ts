// The gRPC protocol for bidi streams on node:http2 directly, beside connect-node (DESIGN.md §8: "the stream path of
// the gateway may leave connect-node's generic handler where profiles say it pays"). A gateway stream carries every
// message twice (send result and delivery, send and ack), and in the 1:1 profile connect-node's generic stream
// machinery (async-iterable pipes, per-frame normalisation, one write awaited per frame) cost more than our own code.
// Here frames are decoded as they arrive, encoded once, and the frames ready in one tick leave in one write; a write
// waits for 'drain' or for the stream's end, so a peer that stops reading cannot hold the handler forever.
// Only `application/grpc` and `application/grpc+proto` without message compression take this path; everything else
// (Connect, gRPC-Web, JSON, compressed) stays with connect-node, and so do all unary and server-streaming calls.
import type http2 from "node:http2";
import { create, fromBinary, isMessage, toBinary, type DescMethodBiDiStreaming, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Registry as Metrics } from "prom-client";
import { authenticate } from "./admission.js";
import { requestIdHeader, scopeFromHeaders, withScope } from "./call-scope.js";
import type { CredentialVerifier } from "./identity.js";
import { identityKey } from "./interceptors/auth-interceptor.js";
import { createErrorMapper } from "./interceptors/error-interceptor.js";
import { rpcServerMetrics } from "./interceptors/metrics-interceptor.js";
import { nodeRequestKey } from "./node-request.js";

type BidiImpl = (requests: AsyncIterable<unknown>, context: HandlerContext) => AsyncIterable<unknown>;

/** What the fast path needs from its server. */
export interface GrpcBidiOptions {
  readonly verifier: CredentialVerifier;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Aborted when the server shuts down: every stream's context is aborted with it. */
  readonly shutdownSignal: AbortSignal;
  /** Largest request message accepted. */
  readonly readMaxBytes: number;
}

/** A bidi method served on node:http2 directly; `serve` returns false when the request is not for this path. */
export interface GrpcBidiRoute {
  readonly path: string;
  serve(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): boolean;
}

const grpcContentType = /^application\/grpc(\+proto)?$/;

/** The HandlerContext of a stream on the fast path. */
class StreamContext implements HandlerContext {
  readonly requestMethod = "POST";
  readonly protocolName = "grpc";
  readonly responseHeader = new Headers();
  readonly responseTrailer = new Headers();

  constructor(
    readonly service: DescService,
    readonly method: DescMethodBiDiStreaming,
    readonly requestHeader: Headers,
    readonly values: ReturnType<typeof createContextValues>,
    readonly signal: AbortSignal,
    readonly url: string,
  ) {}

  timeoutMs(): number | undefined {
    return undefined;
  }
}

function envelope(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.byteLength);
  out[0] = 0;
  out.writeUInt32BE(bytes.byteLength, 1);
  out.set(bytes, 5);
  return out;
}

/** The request messages of a gRPC stream, decoded from its envelopes as they arrive. */
async function* requestMessages(req: http2.Http2ServerRequest, method: DescMethodBiDiStreaming, readMaxBytes: number): AsyncIterable<unknown> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of req as AsyncIterable<Buffer>) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      if (pending[0] !== 0) throw new ConnectError("compressed messages are not accepted on this stream", Code.Unimplemented);
      const size = pending.readUInt32BE(1);
      if (size > readMaxBytes) throw new ConnectError(`message size ${size} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted);
      if (pending.length < 5 + size) break;
      const bytes = pending.subarray(5, 5 + size);
      pending = pending.subarray(5 + size);
      try {
        yield fromBinary(method.input, bytes);
      } catch (err) {
        throw new ConnectError(`request is not a valid ${method.input.typeName} message; string fields must be UTF-8`, Code.InvalidArgument, undefined, undefined, err);
      }
    }
  }
  if (pending.length > 0) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
}

/** Resolves when the response can take more ('drain'), or when it is gone: never waits on a closed stream. */
function writable(res: http2.Http2ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.stream.off("close", done);
      res.stream.off("error", done);
      resolve();
    };
    res.once("drain", done);
    res.stream.once("close", done);
    res.stream.once("error", done);
  });
}

/** Serves one bidi method of a service on the fast path (see the file comment). */
export function grpcBidiRoute(desc: DescService, method: DescMethodBiDiStreaming, impl: BidiImpl, options: GrpcBidiOptions): GrpcBidiRoute {
  const path = `/${desc.typeName}/${method.name}`;
  const rpc = `${desc.typeName}/${method.name}`;
  const mapError = createErrorMapper(options.logger ?? (silentLogger as unknown as Logger));
  const metrics = options.metrics ? rpcServerMetrics(options.metrics) : undefined;

  const run = async (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, contentType: string) => {
    const started = performance.now();
    const header = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (!k.startsWith(":") && v !== undefined) header.set(k, Array.isArray(v) ? v.join(", ") : v);
    const scope = scopeFromHeaders(header);
    const timeout = scope.deadline === undefined ? undefined : scope.deadline - Date.now();
    const abort = new AbortController();
    const onClose = () => abort.abort(new ConnectError("the stream was closed", Code.Canceled));
    req.once("close", onClose);
    const onShutdown = () => abort.abort(new ConnectError("the server is shutting down", Code.Unavailable));
    options.shutdownSignal.addEventListener("abort", onShutdown, { once: true });
    // A deadline the client set ends the stream, as connect-node's handler does.
    const deadline = timeout === undefined ? undefined : setTimeout(() => abort.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout);
    let headersSent = false;
    const sendHeaders = () => {
      if (headersSent || res.stream.destroyed) return;
      headersSent = true;
      res.writeHead(200, { "content-type": contentType, [requestIdHeader]: scope.requestId });
    };
    try {
      const values = createContextValues().set(nodeRequestKey, req);
      const identity = await authenticate(method, header, options.verifier);
      if (identity !== undefined) {
        values.set(identityKey, identity);
        scope.identity = identity;
      }
      const ctx = new StreamContext(desc, method, header, values, abort.signal, `http://${req.headers[":authority"] ?? "localhost"}${path}`);
      const responses = withScope(scope, () => impl(requestMessages(req, method, options.readMaxBytes), ctx))[Symbol.asyncIterator]();
      let batch: Buffer[] = [];
      let flushing: Promise<void> | undefined;
      let full: Promise<void> | undefined;
      // Frames ready within one tick leave in one write; a write the stream could not take is waited for first.
      const flush = async () => {
        await new Promise<void>((r) => setImmediate(r));
        if (full) await full;
        const out = batch.length === 1 ? batch[0]! : Buffer.concat(batch);
        batch = [];
        flushing = undefined;
        if (res.stream.destroyed || res.writableEnded) return;
        sendHeaders();
        if (!res.write(out)) full = writable(res).then(() => void (full = undefined));
      };
      for (let first = true; ; first = false) {
        const step = first ? await withScope(scope, () => responses.next()) : await responses.next();
        if (step.done) break;
        const out = step.value;
        batch.push(envelope(toBinary(method.output, isMessage(out, method.output) ? out : create(method.output, out as never))));
        flushing ??= flush();
        // Backpressure: a full batch waits until the stream took the previous writes before more frames are taken.
        if (batch.length >= 64) {
          await flushing;
          await full;
        }
        if (res.stream.destroyed) {
          await responses.return?.(undefined);
          break;
        }
      }
      await flushing;
      if (!res.stream.destroyed && !res.writableEnded) {
        sendHeaders();
        res.addTrailers({ "grpc-status": "0" });
        res.end();
      }
      metrics?.requests.inc({ rpc, code: "ok" });
    } catch (err) {
      const ce = mapError(err, rpc, scope);
      metrics?.requests.inc({ rpc, code: Code[ce.code] });
      if (!res.stream.destroyed && !res.writableEnded) {
        const status = { "grpc-status": String(ce.code), "grpc-message": encodeURIComponent(ce.rawMessage) };
        if (!headersSent) {
          // Trailers-only: the status goes in the one header block.
          headersSent = true;
          res.writeHead(200, { "content-type": contentType, [requestIdHeader]: scope.requestId, ...status });
        } else res.addTrailers(status);
        res.end();
      }
    } finally {
      req.off("close", onClose);
      clearTimeout(deadline);
      options.shutdownSignal.removeEventListener("abort", onShutdown);
      metrics?.duration.observe({ rpc }, (performance.now() - started) / 1000);
    }
  };

  return {
    path,
    serve(req, res) {
      if (req.url !== path || req.method !== "POST") return false;
      const contentType = req.headers["content-type"] ?? "";
      const encoding = req.headers["grpc-encoding"];
      if (!grpcContentType.test(contentType) || (encoding !== undefined && encoding !== "identity")) return false;
      void run(req, res, contentType).catch((err: unknown) => options.logger?.error({ err, rpc }, "stream handling failed"));
      return true;
    },
  };
}

const silentLogger = { info() {}, warn() {}, error() {}, debug() {} };

// A request body that is not a valid protobuf message (bad wire format, invalid UTF-8 in a string field) is the
// caller's fault, but connect-node reports binary parse failures as Internal before any interceptor runs. These
// wrappers turn those answers into InvalidArgument naming the expected message, for gRPC and Connect unary calls.
import { createAsyncIterable, type UniversalHandler, type UniversalServerResponse } from "@connectrpc/connect/protocol";

const parsePrefix = "parse binary: ";
const grpcInternal = "13";
const grpcInvalidArgument = "3";

/** Wraps every handler of a router so malformed request bodies answer InvalidArgument instead of Internal. */
export function reclassifyMalformedRequests(handlers: UniversalHandler[]): void {
  for (let i = 0; i < handlers.length; i++) handlers[i] = wrapHandler(handlers[i]!);
}

function explain(handler: UniversalHandler, detail: string): string {
  return `request is not a valid ${handler.method.input.typeName} message (${detail}); string fields must be UTF-8`;
}

function wrapHandler(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const res = await handler(req);
    if (res.trailer instanceof Headers) return rewriteGrpc(handler, res, res.trailer);
    return handler.method.methodKind === "unary" ? rewriteConnectUnary(handler, res) : res;
  };
  return Object.assign(wrapped, handler) as UniversalHandler;
}

function fixGrpcTrailer(handler: UniversalHandler, trailer: Headers): void {
  if (trailer.get("grpc-status") !== grpcInternal) return;
  const message = decodeURIComponent(trailer.get("grpc-message") ?? "");
  if (!message.startsWith(parsePrefix)) return;
  trailer.set("grpc-status", grpcInvalidArgument);
  trailer.set("grpc-message", encodeURIComponent(explain(handler, message.slice(parsePrefix.length))));
}

// gRPC trailers are written after the body ends, so they are checked at return and again once the body is drained.
function rewriteGrpc(handler: UniversalHandler, res: UniversalServerResponse, trailer: Headers): UniversalServerResponse {
  fixGrpcTrailer(handler, trailer);
  const body = res.body;
  if (body === undefined || body instanceof Uint8Array) return res;
  return {
    ...res,
    body: (async function* () {
      try {
        yield* body;
      } finally {
        fixGrpcTrailer(handler, trailer);
      }
    })(),
  };
}

// Connect unary errors are one JSON body with the status mapped from the code (internal → 500).
async function rewriteConnectUnary(handler: UniversalHandler, res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const header = res.header instanceof Headers ? res.header : undefined;
  if (res.status !== 500 || header === undefined || res.body === undefined) return res;
  if (header.get("content-type") !== "application/json" || header.has("content-encoding")) return res;
  const chunks: Uint8Array[] = [];
  if (res.body instanceof Uint8Array) chunks.push(res.body);
  else for await (const chunk of res.body) chunks.push(chunk);
  const original = Buffer.concat(chunks);
  let error: { code?: string; message?: string } | undefined;
  try {
    error = JSON.parse(original.toString("utf8")) as typeof error;
  } catch {
    error = undefined;
  }
  if (error?.code !== "internal" || !error.message?.startsWith(parsePrefix)) return { ...res, body: createAsyncIterable([original]) };
  const body = Buffer.from(JSON.stringify({
    code: "invalid_argument",
    message: explain(handler, error.message.slice(parsePrefix.length)),
  }));
  header.set("content-length", String(body.byteLength));
  return { ...res, status: 400, header, body: createAsyncIterable([body]) };
}

// The EchoService used by mesh tests and benchmarks: it reports which instance answered, the deadline and
// identity that reached it, and can relay through the mesh client.
import { Code, ConnectError, type Client, type ServiceImpl } from "@connectrpc/connect";
import { EchoService } from "../gen/im/testing/v1/echo_pb.js";
import { currentScope } from "../mesh/call-scope.js";
import { describeIdentity } from "../mesh/identity.js";
import { identityKey } from "../mesh/interceptors/auth-interceptor.js";

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new ConnectError("cancelled while waiting", Code.Canceled));
    }, { once: true });
  });
}

/** The handlers of one Echo instance; `relayTo` is the mesh client Relay calls through. */
export function createEchoService(instanceId: string, relayTo?: () => Client<typeof EchoService>): ServiceImpl<typeof EchoService> {
  let records = 0;
  return {
    async echo(req, ctx) {
      const scope = currentScope();
      const timeoutMs = scope?.deadline === undefined ? 0 : Math.max(0, scope.deadline - Date.now());
      if (req.delayMs > 0) await sleep(req.delayMs, ctx.signal);
      if (req.failCode !== 0) throw new ConnectError(`failing as asked with code ${req.failCode}`, req.failCode as Code);
      return {
        text: req.text,
        instanceId,
        timeoutMs,
        caller: describeIdentity(ctx.values.get(identityKey)),
        requestId: scope?.requestId ?? "",
      };
    },
    async relay(req) {
      if (relayTo === undefined) throw new ConnectError("this instance has no mesh client to relay with", Code.FailedPrecondition);
      const echo = await relayTo().echo(req.echo!);
      return { echo, relayInstanceId: instanceId };
    },
    async record(req) {
      records++;
      if (req.failCode !== 0) throw new ConnectError(`failing as asked with code ${req.failCode}`, req.failCode as Code);
      return { count: records, instanceId };
    },
  };
}

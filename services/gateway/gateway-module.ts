import { AuthService } from "../../gen/im/auth/v1/auth_pb.js";
import { GatewayService, PushService } from "../../gen/im/gateway/v1/gateway_pb.js";
import { GroupService } from "../../gen/im/group/v1/group_pb.js";
import { MsgService } from "../../gen/im/msg/v1/msg_pb.js";
import { UserService } from "../../gen/im/user/v1/user_pb.js";
import { createForwarder } from "../../mesh/forwarding.js";
import { mount } from "../../mesh/server.js";
import type { ServiceModule } from "../runtime.js";
import { RouteTable } from "../../mesh/routes.js";
import { Delivery } from "../msg/delivery.js";
import { createGatewayServices } from "./gateway-service.js";
import { PresenceTracker } from "./presence.js";
import { TypingRelay } from "./typing.js";

/**
 * The gateway, the only public edge: client streams, PushService for deliveries, and the public unary API of
 * auth, user, msg and group forwarded to their services (in one process with them, the real services answer instead).
 */
export const gatewayModule: ServiceModule = {
  name: "gateway",
  async build(rt) {
    const routes = await RouteTable.open(rt.registry);
    rt.onStop(() => routes.close());
    const presence = new PresenceTracker(routes, rt.kv);
    rt.onStop(async () => presence.close());
    const typing = new TypingRelay({
      clients: rt.clients,
      delivery: new Delivery({ routes, registry: rt.registry, clients: rt.clients, bus: rt.bus, logger: rt.logger }),
      maxGroupMembers: rt.config.typingMaxMembers,
    });
    const { gateway, push, drain } = createGatewayServices({
      gatewayId: rt.instanceId,
      clients: rt.clients,
      registry: rt.registry,
      registration: () => rt.registration(),
      logger: rt.logger,
      metrics: rt.metrics,
      heartbeatMs: rt.config.heartbeatSeconds * 1000,
      presence,
      typing,
    });
    rt.onDrain(drain);
    return [
      mount(GatewayService, gateway),
      mount(PushService, push),
      mount(AuthService, createForwarder(AuthService, rt.clients), { proxy: true }),
      mount(UserService, createForwarder(UserService, rt.clients), { proxy: true }),
      mount(MsgService, createForwarder(MsgService, rt.clients), { proxy: true }),
      mount(GroupService, createForwarder(GroupService, rt.clients), { proxy: true }),
    ];
  },
};

import { GroupInternalService, GroupService } from "../../gen/im/group/v1/group_pb.js";
import { mount } from "../../mesh/server.js";
import type { ServiceModule } from "../runtime.js";
import { createGroupServices } from "./group-service.js";
import { MemoryGroupStore, SqlGroupStore } from "./group-store.js";

/** The group service: groups, members and roles; it mirrors every change of members into the group's conversation. */
export const groupModule: ServiceModule = {
  name: "group",
  async build(rt) {
    const store = rt.store.kind === "sql" ? new SqlGroupStore(rt.store.db) : new MemoryGroupStore(rt.store.tables);
    const services = createGroupServices({ store, clients: rt.clients, kv: rt.kv });
    return [mount(GroupService, services.group), mount(GroupInternalService, services.internal)];
  },
};

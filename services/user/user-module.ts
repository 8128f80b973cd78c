import { UserService } from "../../gen/im/user/v1/user_pb.js";
import { mount } from "../../mesh/server.js";
import type { ServiceModule } from "../runtime.js";
import { MemoryProfileStore, SqlProfileStore } from "./profile-store.js";
import { createUserService } from "./user-service.js";

/** The user service: profiles within an app, cached in kv. */
export const userModule: ServiceModule = {
  name: "user",
  async build(rt) {
    const profiles = rt.store.kind === "sql" ? new SqlProfileStore(rt.store.db) : new MemoryProfileStore(rt.store.tables);
    return [mount(UserService, createUserService({ profiles, kv: rt.kv }))];
  },
};

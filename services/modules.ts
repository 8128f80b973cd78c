// Every service module, in the order their handlers are mounted; all-in-one runs them all in one process.
import { authModule } from "./auth/auth-module.js";
import { fanoutModule } from "./fanout/fanout-module.js";
import { gatewayModule } from "./gateway/gateway-module.js";
import { groupModule } from "./group/group-module.js";
import { msgModule } from "./msg/msg-module.js";
import type { ServiceModule } from "./runtime.js";
import { userModule } from "./user/user-module.js";

/** The modules `npm start` (and the all-in-one test deployments) run. */
export const allModules: readonly ServiceModule[] = [authModule, userModule, msgModule, groupModule, fanoutModule, gatewayModule];

// The user service alone, in mesh mode (`make mesh-up`, one Deployment in the helm chart).
import { runService } from "../runtime.js";
import { userModule } from "./user-module.js";

await runService(userModule);

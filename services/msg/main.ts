// The msg service alone, in mesh mode (`make mesh-up`, one Deployment in the helm chart).
import { runService } from "../runtime.js";
import { msgModule } from "./msg-module.js";

await runService(msgModule);

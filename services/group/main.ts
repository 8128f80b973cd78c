// The group service alone, in mesh mode (`make mesh-up`, one Deployment in the helm chart).
import { runService } from "../runtime.js";
import { groupModule } from "./group-module.js";

await runService(groupModule);

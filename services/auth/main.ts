// The auth service alone, in mesh mode (`make mesh-up`, one Deployment in the helm chart).
import { runService } from "../runtime.js";
import { authModule } from "./auth-module.js";

await runService(authModule);

// The gateway alone, in mesh mode (`make mesh-up`, one Deployment in the helm chart; run several for more cores).
import { runService } from "../runtime.js";
import { gatewayModule } from "./gateway-module.js";

await runService(gatewayModule);

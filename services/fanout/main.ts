// The fan-out worker process in mesh mode.
import { runService } from "../runtime.js";
import { fanoutModule } from "./fanout-module.js";

await runService(fanoutModule);

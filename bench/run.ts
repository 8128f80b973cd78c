// `npm run bench -- <scenario> [--smoke]`: runs a benchmark and prints its table (and saves it under bench/results/).
import { parseArgs } from "node:util";
import { authTokensBench } from "./auth-tokens.js";
import { e2eOneToOneBench } from "./e2e-1to1.js";
import { groupFanoutBench } from "./group-fanout.js";
import { meshClientBench } from "./mesh-client.js";

const scenarios: Record<string, (options: { smoke: boolean }) => Promise<void>> = {
  "mesh-client": meshClientBench,
  "auth-tokens": authTokensBench,
  "e2e-1to1": e2eOneToOneBench,
  "group-fanout": groupFanoutBench,
};

const { positionals, values } = parseArgs({ allowPositionals: true, options: { smoke: { type: "boolean", default: false } } });
const name = positionals[0] ?? "";
const selected = name === "all" ? Object.keys(scenarios) : [name];
for (const s of selected) {
  const run = scenarios[s];
  if (run === undefined) {
    console.error(`unknown scenario "${name}"; available: all, ${Object.keys(scenarios).join(", ")}`);
    process.exit(2);
  }
  await run({ smoke: values.smoke });
}
process.exit(0);

// `npm run bench -- <scenario[,scenario…]|all> [--quick|--smoke] [--pairs N] [--window N] [--ejabberd-archive LIST]
// [--connections N] [--clients N] [--members N] [--online N] [--sends N] [--seconds N] [--profile]`: runs benchmarks, prints one
// table each and saves it under bench/results/.
import { parseArgs } from "node:util";
import { abuseBench } from "./abuse.js";
import { authTokensBench } from "./auth-tokens.js";
import { connectionsBench } from "./connections.js";
import { e2eOneToOneBench, type OneToOneFigures } from "./e2e-1to1.js";
import { ejabberdBench } from "./ejabberd.js";
import { groupFanoutBench } from "./group-fanout.js";
import { meshClientBench } from "./mesh-client.js";
import { benchOptions, ejabberdArchiveChoices, type BenchOptions, type EjabberdArchive } from "./options.js";
import { reconnectStormBench } from "./reconnect-storm.js";
import { transportBench, type TransportFigures } from "./transport.js";

/** Figures one scenario measured that a later one in the same run compares itself with. */
export interface BenchContext {
  transport?: TransportFigures;
  oneToOne?: OneToOneFigures[];
}

const scenarios: Record<string, (options: BenchOptions, context: BenchContext) => Promise<unknown>> = {
  transport: async (o, c) => (c.transport = await transportBench(o)),
  "e2e-1to1": e2eOneToOneBench,
  ejabberd: ejabberdBench,
  connections: connectionsBench,
  "group-fanout": groupFanoutBench,
  "reconnect-storm": reconnectStormBench,
  "mesh-client": meshClientBench,
  "auth-tokens": authTokensBench,
  abuse: abuseBench,
};

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    smoke: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
    pairs: { type: "string" },
    window: { type: "string" },
    "ejabberd-archive": { type: "string" },
    connections: { type: "string" },
    clients: { type: "string" },
    members: { type: "string" },
    online: { type: "string" },
    sends: { type: "string" },
    seconds: { type: "string" },
    profile: { type: "boolean", default: false },
  },
});
const number = (v: string | undefined) => (v === undefined ? undefined : Number(v));
const archives = values["ejabberd-archive"]?.split(",").map((a) => a.trim());
const unknownArchive = archives?.find((a) => !(ejabberdArchiveChoices as readonly string[]).includes(a));
if (unknownArchive !== undefined) {
  console.error(`unknown --ejabberd-archive "${unknownArchive}"; a comma-separated list of: ${ejabberdArchiveChoices.join(", ")}`);
  process.exit(2);
}
const options = benchOptions(values.smoke ? "smoke" : values.quick ? "quick" : "full", {
  pairs: number(values.pairs),
  window: number(values.window),
  ejabberdArchives: archives as EjabberdArchive[] | undefined,
  connections: number(values.connections),
  stormClients: number(values.clients),
  groupMembers: number(values.members),
  groupOnline: number(values.online),
  abuseSends: number(values.sends),
  seconds: number(values.seconds),
  profile: values.profile,
});
const name = positionals[0] ?? "";
const selected = name === "all" ? Object.keys(scenarios) : name.split(",");
const context: BenchContext = {};
const started = Date.now();
for (const s of selected) {
  const run = scenarios[s];
  if (run === undefined) {
    console.error(`unknown scenario "${s}"; available: all, ${Object.keys(scenarios).join(", ")}`);
    process.exit(2);
  }
  await run(options, context);
}
console.log(`\nbench ${name} finished in ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(0);

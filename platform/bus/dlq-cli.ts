// `npm run dlq -- <command> <topic> [options]`: the dead letters of a topic on the brokers of IM_KAFKA_BROKERS.
import { parseArgs } from "node:util";
import { scopeOfNamespace } from "./bus.js";
import { formatListing, listDeadLetters, replayDeadLetters } from "./dead-letter-tools.js";

const usage = `usage: npm run dlq -- <command> <topic> [options]

commands:
  list <topic>     print the dead letters of <topic> (group_msg, offline_msg, membership_change, or its .dlq name):
                   when, where they came from (topic[partition]@offset), key, size, scope and error
  replay <topic>   publish each dead letter of one deployment back to the topic it came from, with its own key and
                   headers; progress is committed in the consumer group [<scope>.]dlq-replay-<topic>, so a second
                   replay only publishes dead letters set aside since

options:
  --scope S        the deployment: its etcd namespace (IM_ETCD_NAMESPACE) or bus scope; replay defaults to the
                   unscoped deployment (no namespace), list shows every scope unless given
  --limit N        list at most N dead letters (default 20, at most 1000)
  --brokers LIST   comma-separated host:port list (default: IM_KAFKA_BROKERS)
  --timeout-ms N   give up reading the topic after N ms (default 60000)`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    scope: { type: "string" },
    limit: { type: "string" },
    brokers: { type: "string" },
    "timeout-ms": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

const [command, topic] = positionals;
if (values.help || command === undefined || topic === undefined) {
  console.log(usage);
  process.exit(values.help ? 0 : 2);
}
const brokers = (values.brokers ?? process.env.IM_KAFKA_BROKERS ?? "").split(",").filter(Boolean);
if (brokers.length === 0) {
  console.error("IM_KAFKA_BROKERS is not set: point it at the brokers (host:port,…) or pass --brokers");
  process.exit(2);
}
const number = (name: string, value: string | undefined, fallback: number, max: number): number => {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 0 || n > max) {
    console.error(`--${name} must be a whole number from 0 to ${max}, got "${value}"`);
    process.exit(2);
  }
  return n;
};
const limit = number("limit", values.limit, 20, 1000);
const timeoutMs = number("timeout-ms", values["timeout-ms"], 60_000, 3_600_000);
const scope = values.scope === undefined ? undefined : scopeOfNamespace(values.scope);

try {
  switch (command) {
    case "list": {
      const listing = await listDeadLetters({ brokers, topic, limit, scope, timeoutMs });
      for (const text of formatListing(listing, scope)) console.log(text);
      break;
    }
    case "replay": {
      const outcome = await replayDeadLetters({ brokers, topic, scope: scope ?? "", timeoutMs });
      console.log(`${outcome.topic}: replayed ${outcome.replayed}, passed over ${outcome.skipped} of other scopes (progress in consumer group ${outcome.groupId})`);
      break;
    }
    default:
      console.error(`unknown command "${command}"\n\n${usage}`);
      process.exitCode = 2;
  }
} catch (err) {
  console.error(`dlq ${command} ${topic} failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}

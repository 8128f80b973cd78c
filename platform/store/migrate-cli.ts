// `npm run migrate -- <command> [options]`: the schema migrations of migrations/ against IM_MYSQL_URL.
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { MigrationError, Migrator } from "./migrations.js";

const usage = `usage: npm run migrate -- <command> [options]

commands:
  up         apply pending migrations (of the given contexts) in version order
  info       list every migration with its state
  validate   fail if an applied file was edited or deleted, or a migration failed
  undo       undo applied migrations above --target (required; 0 undoes everything)
  baseline   mark an existing database as being at --target without running scripts
  repair     remove failed entries and accept edited files' checksums

options:
  --target N          version bound for up, undo and baseline
  --contexts a,b      contexts to apply besides the context-free migrations (e.g. demo)
  --url URL           database URL (default: IM_MYSQL_URL)
  --dir DIR           migrations folder (default: migrations/)`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    target: { type: "string" },
    contexts: { type: "string" },
    url: { type: "string" },
    dir: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

const command = positionals[0];
if (values.help || command === undefined) {
  console.log(usage);
  process.exit(command === undefined && !values.help ? 2 : 0);
}
const url = values.url ?? process.env.IM_MYSQL_URL;
if (!url) {
  console.error("IM_MYSQL_URL is not set: point it at the database (mysql://user:password@host:3306/im_chat) or pass --url");
  process.exit(2);
}
const target = values.target === undefined ? undefined : Number(values.target);
if (target !== undefined && (!Number.isInteger(target) || target < 0)) {
  console.error(`--target must be a version number, got "${values.target}"`);
  process.exit(2);
}
const dir = values.dir ?? fileURLToPath(new URL("../../migrations", import.meta.url));
const contexts = (values.contexts ?? process.env.IM_MIGRATION_CONTEXTS ?? "").split(",").map((c) => c.trim()).filter(Boolean);

const migrator = await Migrator.open(url, dir, { contexts, log: (line) => console.log(line) }).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
try {
  switch (command) {
    case "up":
      await migrator.up(target);
      break;
    case "info": {
      const rows = await migrator.info();
      console.log(["version", "description".padEnd(24), "contexts".padEnd(9), "state".padEnd(14), "installed on".padEnd(24), "ms"].join("  "));
      for (const r of rows) {
        console.log(
          [
            String(r.version).padStart(7),
            r.description.padEnd(24),
            (r.contexts || "-").padEnd(9),
            r.state.padEnd(14),
            (r.installedOn?.toISOString() ?? "").padEnd(24),
            r.executionMs ?? "",
          ].join("  "),
        );
      }
      break;
    }
    case "validate":
      await migrator.validate();
      console.log("every applied migration matches its file");
      break;
    case "undo":
      if (target === undefined) throw new MigrationError("undo needs --target: the version to go back to (0 undoes everything)");
      await migrator.undo(target);
      break;
    case "baseline":
      if (target === undefined) throw new MigrationError("baseline needs --target: the version the existing schema corresponds to");
      await migrator.baseline(target);
      break;
    case "repair": {
      const changes = await migrator.repair();
      if (changes.length === 0) console.log("nothing to repair");
      break;
    }
    default:
      throw new MigrationError(`unknown command "${command}"\n\n${usage}`);
  }
} catch (err) {
  console.error(err instanceof MigrationError ? err.message : err);
  process.exitCode = 1;
} finally {
  await migrator.close();
}

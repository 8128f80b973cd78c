// Loads every library module the way services run (plain Node ESM through tsx, in a child process), because
// mocha's loader accepts named imports from CommonJS packages that Node's ESM loader rejects (kafkajs).
import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect } from "chai";

const root = fileURLToPath(new URL("..", import.meta.url));
/** Entry points run for their side effects (start a server, touch a database); they are not imported here. */
const entryPoints = new Set(["services/all-in-one.ts", "platform/store/migrate-cli.ts", "platform/bus/dlq-cli.ts", "services/auth/keygen.ts", "client/chat-cli.ts"]);
const isEntryPoint = (f: string) => entryPoints.has(f) || /^services\/[a-z]+\/main\.ts$/.test(f);

async function modules(dir: string): Promise<string[]> {
  const entries = await readdir(join(root, dir), { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !/\.(test|contract)\.ts$/.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((f) => !isEntryPoint(f));
}

describe("ESM loading", () => {
  it("imports every module of mesh/, platform/, services/ and client/ under plain Node ESM", async function () {
    this.timeout(60_000);
    const files = (await Promise.all(["mesh", "platform", "services", "client"].map(modules))).flat();
    expect(files.length).to.be.greaterThan(10);
    const script = `for (const f of ${JSON.stringify(files)}) await import("./" + f);`;
    const { stderr } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: root });
    expect(stderr).to.not.match(/Error/);
  });
});

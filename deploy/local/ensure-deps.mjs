// Runs before `npm start` and `npm test` (plain Node, no dependencies): installs node_modules from the lock file
// when they are missing or older than package-lock.json, so both commands work on a fresh clone.
// (`npm install`, not `npm ci`: see .ci/run for why the lock cannot satisfy `npm ci` here.)
import { execSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const marker = "node_modules/.package-lock.json";
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync("package-lock.json").mtimeMs;
if (stale) {
  process.stderr.write("installing dependencies (npm install)…\n");
  execSync("npm install --no-audit --no-fund", { stdio: "inherit" });
}

// Runs before `npm start` and `npm test` (plain Node, no dependencies): installs node_modules from the lock file
// when they are missing or older than package-lock.json, so both commands work on a fresh clone.
import { execSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const marker = "node_modules/.package-lock.json";
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync("package-lock.json").mtimeMs;
if (stale) {
  process.stderr.write("installing dependencies (npm ci)…\n");
  execSync("npm ci --no-audit --no-fund", { stdio: "inherit" });
}

// Reads a V8 CPU profile (`node --cpu-prof`) and prints where the time went: self time per function and per
// package or source folder, the largest first. `npx tsx bench/profile-summary.ts <file.cpuprofile> [top]`.
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/**
 * Self time in ms per function and per package/folder, from a .cpuprofile file; `window` keeps only the samples
 * between two CLOCK_MONOTONIC instants in µs (what process.hrtime gives, and the clock V8 stamps samples with).
 */
export function summarizeProfile(path: string, window?: [number, number]): { total: number; functions: [string, number][]; places: [string, number][]; ours: [string, number][] } {
  const profile = JSON.parse(readFileSync(path, "utf8")) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window[0] || at > window[1])) return;
    self.set(id, (self.get(id) ?? 0) + delta / 1000);
  });
  const functions = new Map<string, number>();
  const places = new Map<string, number>();
  let total = 0;
  for (const [id, ms] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    total += ms;
    const file = url.replace(/^file:\/\//, "").replace(/^.*\/work\/[^/]+\//, "");
    const name = `${functionName || "(anonymous)"} ${file ? `${file.split("/").slice(-2).join("/")}:${lineNumber + 1}` : ""}`.trim();
    functions.set(name, (functions.get(name) ?? 0) + ms);
    const place = !url ? functionName : url.startsWith("node:") ? `node:${url.slice(5).split("/")[0]}` : /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? file.split("/").slice(0, -1).join("/");
    places.set(place, (places.get(place) ?? 0) + ms);
  }
  // Inclusive time of our own functions (services/, mesh/, platform/, client/), each counted once per stack.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ours = new Map<string, number>();
  for (const [id, ms] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url, lineNumber } = byId.get(at)!.callFrame;
      const m = /\/((services|mesh|platform|client)\/.*\.ts)$/.exec(url);
      if (!m || url.includes("node_modules")) continue;
      const name = `${functionName || "(anonymous)"} ${m[1]}:${lineNumber + 1}`;
      if (seen.has(name)) continue;
      seen.add(name);
      ours.set(name, (ours.get(name) ?? 0) + ms);
    }
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { total, functions: sorted(functions), places: sorted(places), ours: sorted(ours) };
}

if (process.argv[1]?.endsWith("profile-summary.ts")) {
  const [path, top = "15"] = process.argv.slice(2);
  if (!path) throw new Error("usage: profile-summary.ts <file.cpuprofile> [top]");
  const { total, functions, places, ours } = summarizeProfile(path);
  const pct = (ms: number) => `${((ms / total) * 100).toFixed(1).padStart(5)} %`;
  console.log(`${Math.round(total)} ms sampled\n\nby package or folder (self time):`);
  for (const [k, ms] of places.slice(0, Number(top))) console.log(`${pct(ms)}  ${k}`);
  console.log("\nby function (self time):");
  for (const [k, ms] of functions.slice(0, Number(top))) console.log(`${pct(ms)}  ${k}`);
  console.log("\nour functions (inclusive time):");
  for (const [k, ms] of ours.slice(0, Number(top))) console.log(`${pct(ms)}  ${k}`);
}

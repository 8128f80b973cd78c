// Contract patterns on the platform's RegExp must answer exactly as RE2 does, and only linear patterns may go there.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RE2JS } from "@bufbuild/re2";
import { expect } from "chai";
import { contractRegexMatch, nativePattern } from "./regex-match.js";

/** Every `pattern: "…"` in the contracts, unescaped as protoc reads it. */
function contractPatterns(): string[] {
  const root = fileURLToPath(new URL("../proto/im/", import.meta.url));
  const found = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(`${dir}${e.name}/`);
      else if (e.name.endsWith(".proto")) {
        for (const [, p] of readFileSync(`${dir}${e.name}`, "utf8").matchAll(/pattern\s*[:=]\s*"((?:[^"\\]|\\.)*)"/g)) found.add(p!.replace(/\\\\/g, "\\"));
      }
    }
  };
  walk(root);
  return [...found];
}

const samples = ["", "a", "s:abc", "g:0b0b-1", "S:abc", "s:", "abc_DEF-1.2:3", "x y", "é", "a\u0000b", "ok\u202Eevil", "tab\there", "-lead", "s:a\nb", "日本語"];

describe("contract regex matching", () => {
  it("runs every pattern of the contracts natively and answers exactly as RE2 for each sample", () => {
    const patterns = contractPatterns();
    expect(patterns.length).to.be.greaterThan(3);
    for (const p of patterns) {
      expect(nativePattern(p), `${p} should be in the native subset`).to.not.equal(undefined);
      const re2 = RE2JS.compile(p);
      for (const s of samples) expect(contractRegexMatch(p, s), `${p} against ${JSON.stringify(s)}`).to.equal(re2.test(s));
    }
  });

  it("leaves patterns a backtracking engine could take super-linear time on to RE2", () => {
    for (const p of ["^(a+)+$", "^[a-z]*[a-z]*$", "^a|b$", "^a{2,}$", "^[a-z]+b+$", "a+", "^.*$"]) expect(nativePattern(p), p).to.equal(undefined);
    expect(contractRegexMatch("^(a+)+$", `${"a".repeat(5000)}!`)).to.equal(false);
  });
});

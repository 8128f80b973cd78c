// protovalidate's `string.pattern` rules run in a JavaScript port of RE2 by default: measured here, a gateway frame's
// validation cost 13–25 µs, most of it in that engine, for patterns as plain as `^[a-z]:[A-Za-z0-9:_-]+$`. The
// patterns come from our own contracts, not from input, so the simple ones run on the platform's RegExp, which is
// linear for them; any other pattern keeps RE2.
import { RE2JS } from "@bufbuild/re2";

type Matcher = (against: string) => boolean;

const cache = new Map<string, Matcher>();

/**
 * Anchored sequences of literals and character classes with at most one quantifier (`*`, `+`, `?`): a backtracking
 * engine matches these in linear time. No groups, alternation or counted repetition.
 */
const atom = String.raw`(?:\[(?:\\x\{[0-9A-Fa-f]{1,6}\}|\\.|[^\]\\])+\]|\\.|[^\\[\](){}|*+?.^$])`;
const token = new RegExp(`${atom}([*+?]?)`, "y");

/** The RE2 pattern as a JavaScript RegExp, when it is in the linear subset; undefined otherwise. */
export function nativePattern(pattern: string): RegExp | undefined {
  if (!pattern.startsWith("^") || !pattern.endsWith("$") || pattern.endsWith("\\$")) return undefined;
  const body = pattern.slice(1, -1);
  let quantifiers = 0;
  token.lastIndex = 0;
  while (token.lastIndex < body.length) {
    const m = token.exec(body);
    if (m === null) return undefined;
    if (m[1] !== "") quantifiers++;
  }
  if (quantifiers > 1) return undefined;
  try {
    // RE2's \x{HHHH} is JavaScript's \u{HHHH} (with the u flag); \p{…} classes mean the same in both.
    return new RegExp(pattern.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, "\\u{$1}"), "u");
  } catch {
    return undefined;
  }
}

/** The regex matcher protovalidate uses for contract patterns: RegExp for the simple ones, RE2 for the rest. */
export function contractRegexMatch(pattern: string, against: string): boolean {
  let match = cache.get(pattern);
  if (match === undefined) {
    const native = nativePattern(pattern);
    if (native !== undefined) match = (s) => native.test(s);
    else {
      const re2 = RE2JS.compile(pattern);
      match = (s) => re2.test(s);
    }
    // Patterns come from the contracts, a fixed set; the bound only guards against a surprise.
    if (cache.size >= 1024) cache.clear();
    cache.set(pattern, match);
  }
  return match(against);
}

// Deterministic hostile request bodies for the abuse suite: messages shaped like an RPC's input (right field
// numbers, wrong or extreme values), the same with bytes flipped, cut or appended, raw wire-format noise, and
// JSON for the Connect protocol. One seed gives the same payloads on every run.
import { create, toBinary, type DescField, type DescMessage } from "@bufbuild/protobuf";

/** A small, fast PRNG (mulberry32): the same sequence for the same seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One payload: its bytes and how to send them. */
export interface Payload {
  readonly kind: "shaped" | "mutated" | "noise" | "json";
  readonly body: Uint8Array;
}

const strings = [
  "",
  "a",
  "00000000-0000-4000-8000-000000000001",
  "s:00000000-0000-4000-8000-000000000001:00000000-0000-4000-8000-000000000002",
  "g:00000000-0000-4000-8000-000000000001",
  "javascript:alert(1)",
  "https://cdn.example.com/x.png",
  "\u0000\u202E\u2066",
  "👀".repeat(40),
  "%s%n%x",
  "' OR 1=1 --",
  "x".repeat(300),
];
const integers = [0n, 1n, -1n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n];

type Random = () => number;
const pick = <T>(rnd: Random, list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;

function scalar(rnd: Random, field: DescField & { fieldKind: "scalar" | "list" | "map" }): unknown {
  const type = field.fieldKind === "scalar" ? field.scalar : field.fieldKind === "list" && field.listKind === "scalar" ? field.scalar : undefined;
  // ScalarType: 9 string, 12 bytes, 8 bool, 1/2 double/float, the rest integers.
  switch (type) {
    case 9:
      return pick(rnd, strings);
    case 12:
      return Uint8Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256));
    case 8:
      return rnd() < 0.5;
    case 1:
    case 2:
      return pick(rnd, [0, -1, 1e308, Number.NaN, Number.POSITIVE_INFINITY]);
    case 3:
    case 4:
    case 6:
    case 16:
    case 18:
      return pick(rnd, integers);
    default:
      return Number(BigInt.asIntN(32, pick(rnd, integers)));
  }
}

function fill(rnd: Random, desc: DescMessage, depth: number): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  for (const field of desc.fields) {
    if (rnd() < 0.3) continue;
    let value: unknown;
    if (field.fieldKind === "message") value = depth < 3 ? fill(rnd, field.message, depth + 1) : undefined;
    else if (field.fieldKind === "enum") value = pick(rnd, [0, 1, 2, 3, 99, -1]);
    else if (field.fieldKind === "list") {
      const n = pick(rnd, [0, 1, 3, 200]);
      value = Array.from({ length: n }, () =>
        field.listKind === "message" ? (depth < 3 ? fill(rnd, field.message, depth + 1) : {}) : field.listKind === "enum" ? pick(rnd, [1, 2, 99]) : scalar(rnd, field),
      );
    } else if (field.fieldKind === "map") value = {};
    else value = scalar(rnd, field);
    if (value === undefined) continue;
    if (field.oneof !== undefined) {
      if (init[field.oneof.localName] === undefined) init[field.oneof.localName] = { case: field.localName, value };
    } else init[field.localName] = value;
  }
  return init;
}

/** Random wire format: tags of any field number and wire type with random contents. */
function noise(rnd: Random): Uint8Array {
  const out: number[] = [];
  const fields = Math.floor(rnd() * 12);
  for (let i = 0; i < fields; i++) {
    const wireType = pick(rnd, [0, 1, 2, 5, 3, 7]);
    const tag = (Math.floor(rnd() * 20) << 3) | wireType;
    out.push(tag & 0x7f);
    if (wireType === 2) {
      const len = Math.floor(rnd() * 40);
      out.push(rnd() < 0.1 ? 0x7f : len);
      for (let j = 0; j < len; j++) out.push(Math.floor(rnd() * 256));
    } else for (let j = 0, n = wireType === 1 ? 8 : wireType === 5 ? 4 : 1 + Math.floor(rnd() * 10); j < n; j++) out.push(Math.floor(rnd() * 256));
  }
  return Uint8Array.from(out);
}

function mutate(rnd: Random, bytes: Uint8Array): Uint8Array {
  const out = Array.from(bytes);
  const edits = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < edits; i++) {
    const op = rnd();
    if (op < 0.4 && out.length > 0) out[Math.floor(rnd() * out.length)] = Math.floor(rnd() * 256);
    else if (op < 0.7) out.length = Math.floor(rnd() * out.length);
    else out.push(...Array.from({ length: 1 + Math.floor(rnd() * 16) }, () => Math.floor(rnd() * 256)));
  }
  return Uint8Array.from(out);
}

function json(rnd: Random, desc: DescMessage): Uint8Array {
  const choices = [
    () => "{",
    () => "[]",
    () => "null",
    () => JSON.stringify({ [pick(rnd, desc.fields)?.jsonName ?? "x"]: pick(rnd, [null, 1e400, -1, "x".repeat(500), [], {}, true]) }),
    () => JSON.stringify(Object.fromEntries(desc.fields.map((f) => [f.jsonName, pick(rnd, strings)]))),
    () => `{"${"a".repeat(1000)}": 1}`,
  ];
  return new TextEncoder().encode(pick(rnd, choices)());
}

/** `count` payloads for requests of `desc`, from `rnd`. */
export function payloads(rnd: Random, desc: DescMessage, count: number): Payload[] {
  const out: Payload[] = [];
  for (let i = 0; i < count; i++) {
    const r = rnd();
    let shaped: Uint8Array;
    try {
      shaped = toBinary(desc, create(desc, fill(rnd, desc, 0) as never));
    } catch {
      // A value the encoder refuses (an out-of-range integer for its type): plain noise instead.
      shaped = noise(rnd);
    }
    if (r < 0.4) out.push({ kind: "shaped", body: shaped });
    else if (r < 0.65) out.push({ kind: "mutated", body: mutate(rnd, shaped) });
    else if (r < 0.85) out.push({ kind: "noise", body: noise(rnd) });
    else out.push({ kind: "json", body: json(rnd, desc) });
  }
  return out;
}

import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { BusRecord } from "./bus.js";

/**
 * Thrown by a bus handler for a record that can never be processed (undecodable bytes, a required field missing),
 * so the dead-letter decorator (dead-letters.ts) sets that record aside instead of retrying its batch forever.
 */
export class PoisonRecordError extends Error {
  override readonly name = "PoisonRecordError";

  constructor(
    /** The record that cannot be processed, as the handler received it. */
    readonly record: BusRecord,
    /** What is wrong with it, for the dead letter's error header and the log. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${record.topic}[${record.partition}]@${record.offset}: ${reason}`, options);
  }
}

/** Decodes a record's value with a protobuf schema, so every consumer turns bad bytes into a PoisonRecordError. */
export function decodeRecord<Desc extends DescMessage>(schema: Desc, record: BusRecord): MessageShape<Desc> {
  try {
    return fromBinary(schema, record.value);
  } catch (err) {
    throw new PoisonRecordError(record, `not a valid ${schema.typeName}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

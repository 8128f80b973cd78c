// The knobs every scenario reads, with the sizes of a full, a quick and a smoke run.

/** One printed table row. */
export type Row = Record<string, string | number>;

/** The same chat text in every scenario (about the length of a typical chat message). */
export const benchText = "benchmark message of a typical chat length, about sixty bytes";

/** How big and how long a run is. */
export interface BenchOptions {
  readonly smoke: boolean;
  readonly quick: boolean;
  /** Sending clients in the 1:1 scenarios (each with a receiving peer). */
  readonly pairs: number;
  /** Sends in flight per sending client. */
  readonly window: number;
  /** Seconds of load per measurement. */
  readonly seconds: number;
  /** Idle streams for `connections`. */
  readonly connections: number;
  /** Clients in `reconnect-storm`. */
  readonly stormClients: number;
  /** Members and online devices in `group-fanout`. */
  readonly groupMembers: number;
  readonly groupOnline: number;
  /** Runs the all-in-one server of `e2e-1to1` under `node --cpu-prof` and prints where its time went. */
  readonly profile: boolean;
}

/** Defaults per run size; explicit options override them. */
export function benchOptions(size: "full" | "quick" | "smoke", overrides: Partial<BenchOptions> = {}): BenchOptions {
  const base: Record<typeof size, BenchOptions> = {
    full: { smoke: false, quick: false, pairs: 500, window: 4, seconds: 8, connections: 20_000, stormClients: 10_000, groupMembers: 10_000, groupOnline: 1_000, profile: false },
    quick: { smoke: false, quick: true, pairs: 100, window: 4, seconds: 3, connections: 2_000, stormClients: 600, groupMembers: 2_000, groupOnline: 200, profile: false },
    smoke: { smoke: true, quick: false, pairs: 2, window: 2, seconds: 1, connections: 50, stormClients: 20, groupMembers: 200, groupOnline: 20, profile: false },
  };
  return { ...base[size], ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
}

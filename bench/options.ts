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
  /** Sends in flight per sending client (the same in transport, e2e-1to1 and ejabberd within one run). */
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
  /** Sequential 1:1 sends per measured phase of `abuse` (quiet, then under hostile load). */
  readonly abuseSends: number;
  /** Runs the all-in-one server of `e2e-1to1` under `node --cpu-prof` and prints where its time went. */
  readonly profile: boolean;
  /** The ejabberd configurations to measure, by where mod_mam archives: nowhere, mnesia or MariaDB (SQL backend). */
  readonly ejabberdArchives: readonly EjabberdArchive[];
}

/** Where ejabberd's message archive (mod_mam) is kept in one measured configuration; none turns the archive off. */
export type EjabberdArchive = "none" | "mnesia" | "sql";

/** Every archive choice `--ejabberd-archive` accepts. */
export const ejabberdArchiveChoices: readonly EjabberdArchive[] = ["none", "mnesia", "sql"];

/** Defaults per run size; explicit options override them. */
export function benchOptions(size: "full" | "quick" | "smoke", overrides: Partial<BenchOptions> = {}): BenchOptions {
  // The in-memory peer of all-in-one and the durable peer of mesh mode.
  const ejabberdArchives: EjabberdArchive[] = ["none", "sql"];
  // 100 pairs with 10 sends in flight each saturate the bare transport server here (about 24,000 msgs/s); 500 pairs
  // with 4 each, the earlier default, left it at 4,000-5,000.
  const base: Record<typeof size, BenchOptions> = {
    full: { smoke: false, quick: false, pairs: 100, window: 10, seconds: 8, connections: 20_000, stormClients: 10_000, groupMembers: 10_000, groupOnline: 1_000, abuseSends: 200, profile: false, ejabberdArchives },
    quick: { smoke: false, quick: true, pairs: 100, window: 10, seconds: 3, connections: 2_000, stormClients: 600, groupMembers: 2_000, groupOnline: 200, abuseSends: 200, profile: false, ejabberdArchives },
    smoke: { smoke: true, quick: false, pairs: 2, window: 2, seconds: 1, connections: 50, stormClients: 20, groupMembers: 200, groupOnline: 20, abuseSends: 20, profile: false, ejabberdArchives },
  };
  return { ...base[size], ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
}

import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { userInfo } from "node:os";
import mysql from "mysql2/promise";
import type { Connection, RowDataPacket } from "mysql2/promise";

/** One versioned migration: V<NNN>__<description>.sql and its undo U<NNN>__<description>.sql. */
export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly script: string;
  readonly sql: string;
  readonly checksum: string;
  /** Contexts from a `-- context: a, b` header; empty means the migration always applies. */
  readonly contexts: readonly string[];
  readonly undoScript: string;
  readonly undoSql: string;
}

/** A migration problem the operator must act on; the message says what and how. */
export class MigrationError extends Error {
  override readonly name = "MigrationError";
}

const namePattern = /^([VU])(\d{3,})__([A-Za-z0-9_]+)\.sql$/;

/** A SHA-256 of the script with line endings normalised, so a checkout on Windows does not look edited. */
export function checksum(sql: string): string {
  return createHash("sha256").update(sql.replace(/\r\n/g, "\n")).digest("hex");
}

function contextsOf(sql: string): string[] {
  const header = /^\s*--\s*context:\s*([^\n]+)/m.exec(sql.split("\n").slice(0, 5).join("\n"));
  return header ? header[1]!.split(",").map((c) => c.trim()).filter(Boolean) : [];
}

/** Reads and checks a migrations folder: names, no duplicate versions, and an undo for every version. */
export async function loadMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  const versions = new Map<number, { v?: string; u?: string }>();
  for (const file of files) {
    const match = namePattern.exec(file);
    if (match === null) throw new MigrationError(`${file}: migration files are named V<NNN>__<description>.sql or U<NNN>__<description>.sql`);
    const version = Number(match[2]);
    const entry = versions.get(version) ?? {};
    const kind = match[1] === "V" ? "v" : "u";
    if (entry[kind] !== undefined) throw new MigrationError(`${file} and ${entry[kind]} have the same version ${version}`);
    entry[kind] = file;
    versions.set(version, entry);
  }
  const migrations: Migration[] = [];
  for (const [version, { v, u }] of [...versions].sort((a, b) => a[0] - b[0])) {
    if (v === undefined) throw new MigrationError(`${u} undoes version ${version}, but there is no V${String(version).padStart(3, "0")}__*.sql`);
    if (u === undefined) throw new MigrationError(`${v} has no undo script: add U${v.slice(1)}`);
    const sql = await readFile(join(dir, v), "utf8");
    const undoSql = await readFile(join(dir, u), "utf8");
    migrations.push({
      version,
      description: namePattern.exec(v)![3]!.replace(/_/g, " "),
      script: v,
      sql,
      checksum: checksum(sql),
      contexts: contextsOf(sql),
      undoScript: u,
      undoSql,
    });
  }
  return migrations;
}

/** One row of `info`: a migration file and/or its history entry. */
export interface MigrationInfo {
  readonly version: number;
  readonly description: string;
  readonly contexts: string;
  readonly state: "applied" | "pending" | "skipped" | "failed" | "changed" | "missing file" | "baseline" | "below baseline";
  readonly installedOn?: Date;
  readonly executionMs?: number;
}

interface HistoryRow extends RowDataPacket {
  version: number;
  description: string;
  type: "SQL" | "BASELINE";
  script: string;
  checksum: string | null;
  contexts: string;
  installed_on: Date;
  execution_ms: number;
  success: number;
}

/** Options of a migrator. */
export interface MigratorOptions {
  /** Contexts to apply besides the context-free migrations (e.g. ["demo"]). */
  readonly contexts?: readonly string[];
  /** How long to wait for another runner to finish (default 60 s). */
  readonly lockTimeoutSeconds?: number;
  readonly log?: (line: string) => void;
}

const lockName = "im_mesh_schema_migrations";

/**
 * Applies, checks and undoes the migrations of a folder against one MySQL/MariaDB database, keeping
 * `schema_history` (version, description, checksum, installed_on, execution_ms, success).
 */
export class Migrator {
  private constructor(
    private readonly conn: Connection,
    private readonly migrations: readonly Migration[],
    private readonly options: MigratorOptions,
  ) {}

  /** Opens a dedicated connection (multi-statement scripts, and the advisory lock lives on it). */
  static async open(url: string, dir: string, options: MigratorOptions = {}): Promise<Migrator> {
    const migrations = await loadMigrations(dir);
    const conn = await mysql.createConnection({ uri: url, multipleStatements: true, timezone: "Z", connectTimeout: 5000, charset: "utf8mb4_unicode_ci" });
    return new Migrator(conn, migrations, options);
  }

  private log(line: string): void {
    this.options.log?.(line);
  }

  private active(m: Migration): boolean {
    return m.contexts.length === 0 || m.contexts.some((c) => this.options.contexts?.includes(c));
  }

  private async ensureHistory(): Promise<void> {
    await this.conn.query(`CREATE TABLE IF NOT EXISTS schema_history (
      installed_rank INT NOT NULL AUTO_INCREMENT,
      version        INT NOT NULL,
      description    VARCHAR(200) NOT NULL,
      type           VARCHAR(20) NOT NULL,
      script         VARCHAR(255) NOT NULL,
      checksum       CHAR(64) NULL,
      contexts       VARCHAR(200) NOT NULL DEFAULT '',
      installed_by   VARCHAR(100) NOT NULL,
      installed_on   TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
      execution_ms   INT NOT NULL,
      success        BOOLEAN NOT NULL,
      PRIMARY KEY (installed_rank),
      UNIQUE KEY uk_schema_history_version (version)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`);
  }

  private async history(): Promise<HistoryRow[]> {
    await this.ensureHistory();
    const [rows] = await this.conn.query<HistoryRow[]>("SELECT * FROM schema_history ORDER BY version");
    return rows;
  }

  /** Runs `work` holding the advisory lock, so two runners never apply migrations at once. */
  private async locked<T>(work: () => Promise<T>): Promise<T> {
    const timeout = this.options.lockTimeoutSeconds ?? 60;
    const [[row]] = await this.conn.query<RowDataPacket[]>("SELECT GET_LOCK(?, ?) AS got", [lockName, timeout]);
    if (row?.got !== 1) {
      throw new MigrationError(`another migration runner holds the lock "${lockName}" (waited ${timeout} s); try again when it has finished`);
    }
    try {
      return await work();
    } finally {
      await this.conn.query("SELECT RELEASE_LOCK(?)", [lockName]);
    }
  }

  /** Every migration file and history entry with its state. */
  async info(): Promise<MigrationInfo[]> {
    const history = await this.history();
    const byVersion = new Map(history.map((h) => [h.version, h]));
    const baseline = history.find((h) => h.type === "BASELINE")?.version ?? 0;
    const rows: MigrationInfo[] = [];
    for (const m of this.migrations) {
      const h = byVersion.get(m.version);
      byVersion.delete(m.version);
      const common = { version: m.version, description: m.description, contexts: m.contexts.join(",") };
      if (h === undefined) {
        const state = m.version <= baseline ? "below baseline" : this.active(m) ? "pending" : "skipped";
        rows.push({ ...common, state });
      } else {
        const state = h.type === "BASELINE" ? "baseline" : !h.success ? "failed" : h.checksum !== m.checksum ? "changed" : "applied";
        rows.push({ ...common, state, installedOn: h.installed_on, executionMs: h.execution_ms });
      }
    }
    for (const h of byVersion.values()) {
      rows.push({
        version: h.version,
        description: h.description,
        contexts: h.contexts,
        state: h.type === "BASELINE" ? "baseline" : "missing file",
        installedOn: h.installed_on,
        executionMs: h.execution_ms,
      });
    }
    return rows.sort((a, b) => a.version - b.version);
  }

  /** Throws a MigrationError listing every applied file that was edited or deleted and every failed entry. */
  async validate(): Promise<void> {
    const problems = (await this.info()).flatMap((r) => {
      const name = `V${String(r.version).padStart(3, "0")} (${r.description})`;
      if (r.state === "changed") return [`${name} was edited after it was applied: restore the file, or write a new migration (repair accepts the edit)`];
      if (r.state === "missing file") return [`${name} is applied but its file is gone: restore it`];
      if (r.state === "failed") return [`${name} failed earlier: fix it, then run repair to clear the failed entry`];
      return [];
    });
    if (problems.length > 0) throw new MigrationError(problems.join("\n"));
  }

  /** Applies every pending migration of the active contexts in version order, up to `target` if given. */
  async up(target = Number.MAX_SAFE_INTEGER): Promise<number> {
    return this.locked(async () => {
      await this.validate();
      const rows = await this.info();
      const pending = this.migrations.filter(
        (m) => m.version <= target && rows.find((r) => r.version === m.version)?.state === "pending",
      );
      for (const m of pending) await this.apply(m);
      if (pending.length === 0) this.log("schema is up to date");
      return pending.length;
    });
  }

  private async apply(m: Migration): Promise<void> {
    const started = Date.now();
    try {
      // DDL commits implicitly in MySQL; the transaction still makes data-only migrations all-or-nothing.
      await this.conn.beginTransaction();
      await this.conn.query(m.sql);
      await this.conn.commit();
    } catch (err) {
      await this.conn.rollback().catch(() => {});
      const reason = err instanceof Error ? err.message : String(err);
      let cleanup: string;
      try {
        await this.conn.query(m.undoSql);
        cleanup = `${m.undoScript} ran to put back what had been applied`;
      } catch (undoErr) {
        cleanup = `${m.undoScript} could not put back the statements that had been applied (${(undoErr as Error).message}); check the schema by hand`;
      }
      await this.record(m, "SQL", Date.now() - started, false);
      throw new MigrationError(`${m.script} failed: ${reason}\n${cleanup}; fix the script, then run repair and up again`);
    }
    const ms = Date.now() - started;
    await this.record(m, "SQL", ms, true);
    this.log(`applied ${m.script} (${ms} ms)`);
  }

  private async record(m: Pick<Migration, "version" | "description" | "script" | "checksum" | "contexts">, type: string, ms: number, success: boolean): Promise<void> {
    await this.conn.query(
      `INSERT INTO schema_history (version, description, type, script, checksum, contexts, installed_by, execution_ms, success)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [m.version, m.description, type, m.script, m.checksum, m.contexts.join(","), `${userInfo().username}@${process.pid}`.slice(0, 100), ms, success],
    );
  }

  /** Undoes applied migrations above `target`, newest first, each with its U script. */
  async undo(target: number): Promise<number> {
    return this.locked(async () => {
      await this.validate();
      const applied = (await this.history()).filter((h) => h.version > target && h.type === "SQL" && h.success).reverse();
      const baseline = (await this.history()).find((h) => h.type === "BASELINE");
      if (baseline !== undefined && baseline.version > target) {
        throw new MigrationError(`cannot undo below the baseline at version ${baseline.version}: that schema was not created by these scripts`);
      }
      for (const h of applied) {
        const m = this.migrations.find((x) => x.version === h.version)!;
        const started = Date.now();
        await this.conn.query(m.undoSql);
        await this.conn.query("DELETE FROM schema_history WHERE version = ?", [m.version]);
        this.log(`undid ${m.script} with ${m.undoScript} (${Date.now() - started} ms)`);
      }
      return applied.length;
    });
  }

  /** Marks an existing database (created without this runner) as being at `version`, without running scripts. */
  async baseline(version: number, description = "baseline"): Promise<void> {
    await this.locked(async () => {
      if ((await this.history()).length > 0) throw new MigrationError("baseline only applies to a database without migration history");
      await this.record({ version, description, script: `<< baseline ${version} >>`, checksum: "", contexts: [] }, "BASELINE", 0, true);
      this.log(`baselined at version ${version}`);
    });
  }

  /** Removes failed entries and accepts edited files' new checksums; returns what it changed. */
  async repair(): Promise<string[]> {
    return this.locked(async () => {
      const changes: string[] = [];
      for (const h of await this.history()) {
        const m = this.migrations.find((x) => x.version === h.version);
        if (!h.success) {
          await this.conn.query("DELETE FROM schema_history WHERE version = ?", [h.version]);
          changes.push(`removed the failed entry of ${h.script}`);
        } else if (h.type === "SQL" && m !== undefined && m.checksum !== h.checksum) {
          await this.conn.query("UPDATE schema_history SET checksum = ? WHERE version = ?", [m.checksum, h.version]);
          changes.push(`accepted the edited ${m.script}`);
        }
      }
      for (const c of changes) this.log(c);
      return changes;
    });
  }

  async close(): Promise<void> {
    await this.conn.end();
  }
}

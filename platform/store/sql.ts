import mysql from "mysql2/promise";
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { UnavailableError } from "../errors.js";

/** A value bound to a `?` placeholder. */
export type SqlValue = string | number | bigint | boolean | Date | Uint8Array | null;

/** What repositories run statements through: the pool itself, or one transaction. */
export interface SqlExecutor {
  /** Runs a SELECT and returns its rows. */
  query<T extends RowDataPacket>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** Runs an INSERT, UPDATE or DELETE and returns affected rows and the insert id. */
  execute(sql: string, params?: readonly SqlValue[]): Promise<ResultSetHeader>;
}

/** Pool settings (defaults from the infrastructure seed: 25 connections at most, 5 kept idle). */
export interface SqlOptions {
  readonly connectionLimit?: number;
  readonly maxIdle?: number;
  /** A statement that runs longer fails as unavailable (default 10 s). */
  readonly queryTimeoutMs?: number;
}

const connectionErrors = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_CON_COUNT_ERROR",
  "ER_SERVER_SHUTDOWN",
  "POOL_CLOSED",
]);

/** Whether an error is MySQL's duplicate-key refusal, which repositories turn into AlreadyExists. */
export function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === "ER_DUP_ENTRY";
}

function mapError(err: unknown): unknown {
  const code = (err as { code?: string } | null)?.code;
  if (code !== undefined && connectionErrors.has(code)) {
    return new UnavailableError("mysql", `${code}: ${(err as Error).message}`, { cause: err });
  }
  return err;
}

class Executor implements SqlExecutor {
  constructor(
    protected readonly target: Pool | PoolConnection,
    protected readonly timeout: number,
  ) {}

  /** Runs one statement with the time-out, turning lost connections into UnavailableError. */
  private async run<R extends RowDataPacket[] | ResultSetHeader>(sql: string, params: readonly SqlValue[]): Promise<R> {
    try {
      const [result] = await this.target.query<R>({ sql, timeout: this.timeout }, params as SqlValue[]);
      return result;
    } catch (err) {
      throw mapError(err);
    }
  }

  query<T extends RowDataPacket>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return this.run<T[]>(sql, params);
  }

  execute(sql: string, params: readonly SqlValue[] = []): Promise<ResultSetHeader> {
    return this.run<ResultSetHeader>(sql, params);
  }
}

/** The MySQL store building block: a bounded mysql2 pool, statement time-outs, and transactions. */
export class SqlDatabase extends Executor {
  private constructor(
    private readonly pool: Pool,
    timeout: number,
  ) {
    super(pool, timeout);
  }

  /** Opens the pool and checks one connection, so a wrong URL or password fails at start. */
  static async connect(url: string, options: SqlOptions = {}): Promise<SqlDatabase> {
    const pool = mysql.createPool({
      uri: url,
      connectionLimit: options.connectionLimit ?? 25,
      maxIdle: options.maxIdle ?? 5,
      idleTimeout: 60_000,
      enableKeepAlive: true,
      connectTimeout: 3000,
      timezone: "Z",
      supportBigNumbers: true,
      charset: "utf8mb4_unicode_ci",
    });
    try {
      const conn = await pool.getConnection();
      conn.release();
    } catch (err) {
      await pool.end().catch(() => {});
      const mapped = mapError(err);
      if (mapped instanceof UnavailableError) throw mapped;
      throw new Error(`mysql: cannot open ${url.replace(/\/\/([^:/@]+):[^@/]*@/, "//$1:***@")}: ${(err as Error).message}`, { cause: err });
    }
    return new SqlDatabase(pool, options.queryTimeoutMs ?? 10_000);
  }

  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws. A deadlock
   * (which InnoDB resolves by killing one side) runs the whole transaction again, up to three times.
   */
  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let conn: PoolConnection;
      try {
        conn = await this.pool.getConnection();
      } catch (err) {
        throw mapError(err);
      }
      try {
        await conn.beginTransaction();
        const result = await work(new Executor(conn, this.timeout));
        await conn.commit();
        return result;
      } catch (err) {
        await conn.rollback().catch(() => {});
        const code = (err as { code?: string } | null)?.code;
        if ((code === "ER_LOCK_DEADLOCK" || code === "ER_LOCK_WAIT_TIMEOUT") && attempt < 3) continue;
        throw mapError(err);
      } finally {
        conn.release();
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

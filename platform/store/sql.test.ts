import { randomUUID } from "node:crypto";
import { expect } from "chai";
import type { RowDataPacket } from "mysql2/promise";
import { infraEnv } from "../../test/infra.js";
import { freePort } from "../../test/processes.js";
import { UnavailableError } from "../errors.js";
import { isDuplicateKey, SqlDatabase } from "./sql.js";

describe("sql store: MariaDB @infra", () => {
  let db: SqlDatabase;
  let table: string;

  beforeEach(async () => {
    db = await SqlDatabase.connect(infraEnv("IM_MYSQL_URL"), { queryTimeoutMs: 2000 });
    table = `sql_test_${randomUUID().replaceAll("-", "")}`;
    await db.execute(`CREATE TABLE ${table} (id INT PRIMARY KEY, body VARCHAR(100) NOT NULL) DEFAULT CHARSET=utf8mb4`);
  });
  afterEach(async () => {
    await db.execute(`DROP TABLE IF EXISTS ${table}`);
    await db.close();
  });

  it("binds parameters and returns rows and affected counts", async () => {
    const result = await db.execute(`INSERT INTO ${table} (id, body) VALUES (?, ?), (?, ?)`, [1, "a", 2, "ünïcödé 👋"]);
    expect(result.affectedRows).to.equal(2);
    const rows = await db.query<RowDataPacket>(`SELECT id, body FROM ${table} WHERE id >= ? ORDER BY id`, [1]);
    expect(rows.map((r) => [r.id, r.body])).to.deep.equal([[1, "a"], [2, "ünïcödé 👋"]]);
  });

  it("commits a transaction that resolves and rolls back one that throws", async () => {
    await db.transaction(async (tx) => {
      await tx.execute(`INSERT INTO ${table} (id, body) VALUES (1, 'kept')`);
    });
    const err = await db
      .transaction(async (tx) => {
        await tx.execute(`INSERT INTO ${table} (id, body) VALUES (2, 'rolled back')`);
        await tx.execute(`INSERT INTO ${table} (id, body) VALUES (1, 'duplicate')`);
      })
      .catch((e: unknown) => e);
    expect(isDuplicateKey(err)).to.equal(true);
    const rows = await db.query<RowDataPacket>(`SELECT id FROM ${table} ORDER BY id`);
    expect(rows.map((r) => r.id)).to.deep.equal([1]);
  });

  it("never opens more than 25 connections, however many queries run at once", async () => {
    const ids = await Promise.all(
      Array.from({ length: 60 }, () => db.query<RowDataPacket>("SELECT CONNECTION_ID() AS id, SLEEP(0.05) AS s")),
    );
    const distinct = new Set(ids.map((rows) => rows[0]!.id));
    expect(distinct.size).to.be.within(2, 25);
  });

  it("fails a statement that outlives the query timeout as unavailable", async () => {
    const err = await db.query("SELECT SLEEP(5)").catch((e: unknown) => e);
    expect(err).to.be.instanceOf(UnavailableError);
    expect((err as UnavailableError).component).to.equal("mysql");
  });

  it("fails to connect with UnavailableError when no server listens", async () => {
    const port = await freePort();
    const err = await SqlDatabase.connect(`mysql://u:p@127.0.0.1:${port}/im_chat`).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(UnavailableError);
  });
});

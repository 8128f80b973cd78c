import { randomUUID } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import mysql from "mysql2/promise";
import type { RowDataPacket } from "mysql2/promise";
import { infraEnv } from "../../test/infra.js";
import { checksum, loadMigrations, MigrationError, Migrator } from "./migrations.js";

const migrationsDir = fileURLToPath(new URL("../../migrations", import.meta.url));

async function scratchDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "im-migrations-"));
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

describe("migrations: loading", () => {
  it("pairs every V with its U, reads contexts, and orders by version", async () => {
    const migrations = await loadMigrations(migrationsDir);
    expect(migrations.map((m) => [m.version, m.script, m.undoScript, m.contexts])).to.deep.equal([
      [1, "V001__initial_schema.sql", "U001__initial_schema.sql", []],
      [2, "V002__demo_data.sql", "U002__demo_data.sql", ["demo"]],
      [3, "V003__group_membership_seq.sql", "U003__group_membership_seq.sql", []],
    ]);
    expect(migrations[0]!.description).to.equal("initial schema");
  });

  it("refuses a folder with a bad name, a missing undo or a repeated version", async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ "V1_init.sql": "" }, /V1_init.sql: migration files are named/],
      [{ "V001__a.sql": "" }, /V001__a.sql has no undo script: add U001__a.sql/],
      [{ "U002__a.sql": "" }, /undoes version 2, but there is no V002/],
      [{ "V001__a.sql": "", "V001__b.sql": "", "U001__a.sql": "" }, /same version 1/],
    ];
    for (const [files, message] of cases) {
      const dir = await scratchDir(files);
      const err = await loadMigrations(dir).catch((e: unknown) => e);
      expect(err, JSON.stringify(files)).to.be.instanceOf(MigrationError);
      expect((err as Error).message).to.match(message);
      await rm(dir, { recursive: true });
    }
  });

  it("checksums ignore line-ending style but not content", () => {
    expect(checksum("a\r\nb")).to.equal(checksum("a\nb"));
    expect(checksum("a\nb")).to.not.equal(checksum("a\nc"));
  });
});

describe("migrations: MariaDB @infra", function () {
  this.timeout(60_000);
  let admin: mysql.Connection;
  let url: string;
  let db: string;

  beforeEach(async () => {
    admin = await mysql.createConnection({ uri: infraEnv("IM_MYSQL_URL") });
    db = `im_chat_t${randomUUID().replaceAll("-", "").slice(0, 16)}`;
    await admin.query(`CREATE DATABASE \`${db}\``);
    const u = new URL(infraEnv("IM_MYSQL_URL"));
    u.pathname = `/${db}`;
    url = u.toString();
  });
  afterEach(async () => {
    await admin.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await admin.end();
  });

  async function tables(): Promise<Map<string, string>> {
    const [rows] = await admin.query<RowDataPacket[]>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ? AND table_name <> 'schema_history'",
      [db],
    );
    const result = new Map<string, string>();
    for (const { name } of rows) {
      const [[create]] = await admin.query<RowDataPacket[]>(`SHOW CREATE TABLE \`${db}\`.\`${name}\``);
      result.set(name as string, (create!["Create Table"] as string).replace(/ AUTO_INCREMENT=\d+/, ""));
    }
    return result;
  }

  async function count(table: string): Promise<number> {
    const [[row]] = await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${db}\`.\`${table}\``);
    return Number(row!.n);
  }

  async function withMigrator<T>(dir: string, contexts: string[], work: (m: Migrator) => Promise<T>): Promise<T> {
    const migrator = await Migrator.open(url, dir, { contexts, lockTimeoutSeconds: 5 });
    try {
      return await work(migrator);
    } finally {
      await migrator.close();
    }
  }

  it("applies the schema, and the demo data only in the demo context", async () => {
    await withMigrator(migrationsDir, [], async (m) => {
      expect(await m.up()).to.equal(2);
      expect((await m.info()).map((r) => [r.version, r.state])).to.deep.equal([[1, "applied"], [2, "skipped"], [3, "applied"]]);
    });
    expect(await count("users")).to.equal(0);
    expect((await tables()).size).to.equal(12);
    await withMigrator(migrationsDir, ["demo"], async (m) => {
      expect(await m.up()).to.equal(1);
      expect(await m.up()).to.equal(0);
    });
    expect(await count("users")).to.equal(4);
    expect(await count("group_members")).to.equal(3);
    expect(await count("messages")).to.equal(6);
  });

  it("leaves the same schema after undo to 0 and up again", async () => {
    await withMigrator(migrationsDir, ["demo"], (m) => m.up());
    const before = await tables();
    expect(before.get("offline_messages")).to.match(/PARTITION BY KEY \(`user_id`\)\s*PARTITIONS 16/);
    expect(before.get("messages")).to.match(/FULLTEXT KEY `ft_messages_search_text`/);
    await withMigrator(migrationsDir, ["demo"], async (m) => {
      expect(await m.undo(0)).to.equal(3);
      expect((await m.info()).map((r) => r.state)).to.deep.equal(["pending", "pending", "pending"]);
    });
    expect((await tables()).size).to.equal(0);
    await withMigrator(migrationsDir, ["demo"], (m) => m.up());
    expect(await tables()).to.deep.equal(before);
  });

  it("refuses to run after an applied file was edited, until repair accepts it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "im-migrations-"));
    await cp(migrationsDir, dir, { recursive: true });
    try {
      await withMigrator(dir, [], (m) => m.up());
      const v1 = join(dir, "V001__initial_schema.sql");
      await writeFile(v1, `${await readFile(v1, "utf8")}\n-- an edit\n`);
      await withMigrator(dir, ["demo"], async (m) => {
        const err = await m.up().catch((e: unknown) => e);
        expect(err).to.be.instanceOf(MigrationError);
        expect((err as Error).message).to.match(/V001 \(initial schema\) was edited after it was applied/);
        expect((await m.info())[0]!.state).to.equal("changed");
        expect(await count("users")).to.equal(0);
        expect(await m.repair()).to.deep.equal(["accepted the edited V001__initial_schema.sql"]);
        await m.validate();
        expect(await m.up()).to.equal(1);
      });
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it("puts the database back when a migration fails halfway, and needs repair before trying again", async () => {
    const good = "CREATE TABLE a (id INT PRIMARY KEY);\nCREATE TABLE b (id INT PRIMARY KEY);\n";
    const dir = await scratchDir({
      "V001__two_tables.sql": `${good}INSERT INTO no_such_table VALUES (1);\n`,
      "U001__two_tables.sql": "DROP TABLE IF EXISTS b;\nDROP TABLE IF EXISTS a;\n",
    });
    try {
      await withMigrator(dir, [], async (m) => {
        const err = await m.up().catch((e: unknown) => e);
        expect(err).to.be.instanceOf(MigrationError);
        expect((err as Error).message).to.match(/V001__two_tables.sql failed: .*no_such_table/);
        expect((err as Error).message).to.match(/U001__two_tables.sql ran to put back what had been applied/);
        expect((await m.info())[0]!.state).to.equal("failed");
      });
      expect((await tables()).size, "tables a and b were removed again").to.equal(0);
      await writeFile(join(dir, "V001__two_tables.sql"), good);
      await withMigrator(dir, [], async (m) => {
        expect(((await m.up().catch((e: unknown) => e)) as Error).message).to.match(/failed earlier: fix it, then run repair/);
        expect(await m.repair()).to.deep.equal(["removed the failed entry of V001__two_tables.sql"]);
        expect(await m.up()).to.equal(1);
      });
      expect([...(await tables()).keys()].sort()).to.deep.equal(["a", "b"]);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it("lets only one runner apply at a time", async () => {
    const holder = await mysql.createConnection({ uri: url });
    try {
      await holder.query("SELECT GET_LOCK('im_mesh_schema_migrations', 1)");
      const migrator = await Migrator.open(url, migrationsDir, { lockTimeoutSeconds: 1 });
      const err = await migrator.up().catch((e: unknown) => e);
      await migrator.close();
      expect((err as Error).message).to.match(/another migration runner holds the lock/);
    } finally {
      await holder.end();
    }
    const runners = await Promise.all([0, 1, 2].map(() => Migrator.open(url, migrationsDir, { lockTimeoutSeconds: 30 })));
    const applied = await Promise.all(runners.map((r) => r.up()));
    await Promise.all(runners.map((r) => r.close()));
    expect(applied.reduce((a, b) => a + b, 0)).to.equal(2);
  });

  it("baselines a database created without the runner and applies only what comes after", async () => {
    const existing = await mysql.createConnection({ uri: url, multipleStatements: true });
    await existing.query(await readFile(join(migrationsDir, "V001__initial_schema.sql"), "utf8"));
    await existing.end();
    await withMigrator(migrationsDir, ["demo"], async (m) => {
      await m.baseline(1);
      expect((await m.info()).map((r) => [r.version, r.state])).to.deep.equal([[1, "baseline"], [2, "pending"], [3, "pending"]]);
      expect(await m.up()).to.equal(2);
      expect(await m.undo(1)).to.equal(2);
      const err = await m.undo(0).catch((e: unknown) => e);
      expect((err as Error).message).to.match(/cannot undo below the baseline at version 1/);
      expect(((await m.baseline(3).catch((e: unknown) => e)) as Error).message).to.match(/without migration history/);
    });
  });
});

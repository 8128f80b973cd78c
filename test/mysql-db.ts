// A throwaway database with the current schema, for repository tests against real MariaDB.
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import mysql from "mysql2/promise";
import { Migrator } from "../platform/store/migrations.js";
import { SqlDatabase } from "../platform/store/sql.js";
import { infraEnv } from "./infra.js";

/** A migrated database and a pool on it; drop() removes it. */
export interface ScratchDatabase {
  readonly url: string;
  readonly db: SqlDatabase;
  drop(): Promise<void>;
}

/** Creates im_chat_t<random>, applies every migration (with the given contexts) and opens a pool. */
export async function scratchDatabase(contexts: string[] = []): Promise<ScratchDatabase> {
  const base = infraEnv("IM_MYSQL_URL");
  const name = `im_chat_t${randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = await mysql.createConnection({ uri: base });
  await admin.query(`CREATE DATABASE \`${name}\``);
  const u = new URL(base);
  u.pathname = `/${name}`;
  const url = u.toString();
  const migrator = await Migrator.open(url, fileURLToPath(new URL("../migrations", import.meta.url)), { contexts });
  await migrator.up();
  await migrator.close();
  const db = await SqlDatabase.connect(url);
  return {
    url,
    db,
    drop: async () => {
      await db.close();
      await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.end();
    },
  };
}

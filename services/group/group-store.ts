import type { RowDataPacket } from "mysql2/promise";
import type { SqlDatabase, SqlExecutor } from "../../platform/store/sql.js";
import type { GroupMemberRow, GroupRow, MemoryTables } from "../../platform/store/memory-tables.js";
import { chunks } from "../msg/message-store.js";

/** A group (a `chat_groups` row); version grows with every change. */
export type GroupRecord = GroupRow;

/** A member of a group with their role: 1 owner, 2 admin, 3 member (GroupRole). */
export type GroupMemberRecord = Pick<GroupMemberRow, "userId" | "role" | "joinedAt" | "joinedSeq">;

/** Roles as stored (the values of im.group.v1.GroupRole). */
export const roles = { owner: 1, admin: 2, member: 3 } as const;

/**
 * The group service's storage: groups and their members with roles (DESIGN.md §4). Every change of members
 * happens with the group's row locked, so `member_count` stays exact under concurrent joins and leaves.
 * Every read and write is scoped to an app; a dissolved group takes no more changes of members.
 */
export interface GroupStore {
  /** Creates the group with its owner and members; a group with this id already there is returned as it is. */
  create(group: Pick<GroupRecord, "appId" | "id" | "name" | "avatarUrl" | "ownerId">, memberIds: readonly string[]): Promise<{ group: GroupRecord; created: boolean }>;
  group(appId: string, groupId: string): Promise<GroupRecord | undefined>;
  update(appId: string, groupId: string, patch: { name?: string; avatarUrl?: string }): Promise<GroupRecord | undefined>;
  member(appId: string, groupId: string, userId: string): Promise<GroupMemberRecord | undefined>;
  /** Adds those not yet members (as members); undefined when the group is absent or dissolved. */
  addMembers(appId: string, groupId: string, userIds: readonly string[]): Promise<{ added: string[]; memberCount: number } | undefined>;
  /** Removes those who are members; undefined when the group is absent or dissolved. */
  removeMembers(appId: string, groupId: string, userIds: readonly string[]): Promise<{ removed: string[]; memberCount: number } | undefined>;
  setRole(appId: string, groupId: string, userId: string, role: number): Promise<GroupMemberRecord | undefined>;
  /** Makes `to` the owner and the previous owner an admin. */
  transferOwnership(appId: string, groupId: string, from: string, to: string): Promise<GroupRecord | undefined>;
  dissolve(appId: string, groupId: string, at: Date): Promise<GroupRecord | undefined>;
  /** Records the seq of the system message that added these members. */
  setJoinedSeq(appId: string, groupId: string, userIds: readonly string[], seq: number): Promise<void>;
  /** The user's groups that are not dissolved, by group id, after `afterGroupId`. */
  groupsOf(appId: string, userId: string, limit: number, afterGroupId?: string): Promise<GroupRecord[]>;
  /** Members by user id, after `afterUserId`. */
  members(appId: string, groupId: string, limit: number, afterUserId?: string): Promise<GroupMemberRecord[]>;
  memberIds(appId: string, groupId: string): Promise<string[]>;
}

function record(g: GroupRow): GroupRecord {
  return { ...g };
}

/** The GroupStore on the in-memory tables (all-in-one mode and unit tests). */
export class MemoryGroupStore implements GroupStore {
  constructor(private readonly tables: MemoryTables) {}

  private live(appId: string, groupId: string): GroupRow | undefined {
    const g = this.tables.groups.get(groupId);
    return g?.appId === appId && g.dissolvedAt === null ? g : undefined;
  }

  private count(groupId: string): number {
    let n = 0;
    for (const m of this.tables.groupMembers.values()) if (m.groupId === groupId) n++;
    return n;
  }

  async create(group: Pick<GroupRecord, "appId" | "id" | "name" | "avatarUrl" | "ownerId">, memberIds: readonly string[]): Promise<{ group: GroupRecord; created: boolean }> {
    const existing = this.tables.groups.get(group.id);
    if (existing) return { group: record(existing), created: false };
    const now = new Date();
    const ids = [group.ownerId, ...memberIds.filter((u) => u !== group.ownerId)];
    const row: GroupRow = { ...group, memberCount: ids.length, version: 1, createdAt: now, dissolvedAt: null };
    this.tables.groups.set(group.id, row);
    for (const userId of ids) {
      this.tables.groupMembers.set(`${group.id} ${userId}`, { appId: group.appId, groupId: group.id, userId, role: userId === group.ownerId ? roles.owner : roles.member, joinedAt: now, joinedSeq: 0 });
    }
    return { group: record(row), created: true };
  }

  async group(appId: string, groupId: string): Promise<GroupRecord | undefined> {
    const g = this.tables.groups.get(groupId);
    return g?.appId === appId ? record(g) : undefined;
  }

  async update(appId: string, groupId: string, patch: { name?: string; avatarUrl?: string }): Promise<GroupRecord | undefined> {
    const g = this.live(appId, groupId);
    if (g === undefined) return undefined;
    if (patch.name !== undefined) g.name = patch.name;
    if (patch.avatarUrl !== undefined) g.avatarUrl = patch.avatarUrl;
    g.version++;
    return record(g);
  }

  async member(appId: string, groupId: string, userId: string): Promise<GroupMemberRecord | undefined> {
    const m = this.tables.groupMembers.get(`${groupId} ${userId}`);
    return m?.appId === appId ? { userId: m.userId, role: m.role, joinedAt: m.joinedAt, joinedSeq: m.joinedSeq } : undefined;
  }

  async addMembers(appId: string, groupId: string, userIds: readonly string[]): Promise<{ added: string[]; memberCount: number } | undefined> {
    const g = this.live(appId, groupId);
    if (g === undefined) return undefined;
    const now = new Date();
    const added = [...new Set(userIds)].filter((u) => !this.tables.groupMembers.has(`${groupId} ${u}`));
    for (const userId of added) this.tables.groupMembers.set(`${groupId} ${userId}`, { appId, groupId, userId, role: roles.member, joinedAt: now, joinedSeq: 0 });
    g.memberCount = this.count(groupId);
    g.version++;
    return { added, memberCount: g.memberCount };
  }

  async removeMembers(appId: string, groupId: string, userIds: readonly string[]): Promise<{ removed: string[]; memberCount: number } | undefined> {
    const g = this.live(appId, groupId);
    if (g === undefined) return undefined;
    const removed = [...new Set(userIds)].filter((u) => this.tables.groupMembers.delete(`${groupId} ${u}`));
    g.memberCount = this.count(groupId);
    g.version++;
    return { removed, memberCount: g.memberCount };
  }

  async setRole(appId: string, groupId: string, userId: string, role: number): Promise<GroupMemberRecord | undefined> {
    const m = this.tables.groupMembers.get(`${groupId} ${userId}`);
    if (this.live(appId, groupId) === undefined || m === undefined) return undefined;
    m.role = role;
    return this.member(appId, groupId, userId);
  }

  async transferOwnership(appId: string, groupId: string, from: string, to: string): Promise<GroupRecord | undefined> {
    const g = this.live(appId, groupId);
    const next = this.tables.groupMembers.get(`${groupId} ${to}`);
    const previous = this.tables.groupMembers.get(`${groupId} ${from}`);
    if (g === undefined || next === undefined || previous === undefined) return undefined;
    next.role = roles.owner;
    previous.role = roles.admin;
    g.ownerId = to;
    g.version++;
    return record(g);
  }

  async dissolve(appId: string, groupId: string, at: Date): Promise<GroupRecord | undefined> {
    const g = this.live(appId, groupId);
    if (g === undefined) return undefined;
    g.dissolvedAt = at;
    g.version++;
    return record(g);
  }

  async setJoinedSeq(appId: string, groupId: string, userIds: readonly string[], seq: number): Promise<void> {
    for (const u of userIds) {
      const m = this.tables.groupMembers.get(`${groupId} ${u}`);
      if (m?.appId === appId) m.joinedSeq = seq;
    }
  }

  async groupsOf(appId: string, userId: string, limit: number, afterGroupId = ""): Promise<GroupRecord[]> {
    return [...this.tables.groupMembers.values()]
      .filter((m) => m.appId === appId && m.userId === userId && m.groupId > afterGroupId)
      .map((m) => this.tables.groups.get(m.groupId)!)
      .filter((g) => g.dissolvedAt === null)
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .slice(0, limit)
      .map(record);
  }

  async members(appId: string, groupId: string, limit: number, afterUserId = ""): Promise<GroupMemberRecord[]> {
    return [...this.tables.groupMembers.values()]
      .filter((m) => m.appId === appId && m.groupId === groupId && m.userId > afterUserId)
      .sort((a, b) => (a.userId < b.userId ? -1 : 1))
      .slice(0, limit)
      .map((m) => ({ userId: m.userId, role: m.role, joinedAt: m.joinedAt, joinedSeq: m.joinedSeq }));
  }

  async memberIds(appId: string, groupId: string): Promise<string[]> {
    return [...this.tables.groupMembers.values()].filter((m) => m.appId === appId && m.groupId === groupId).map((m) => m.userId);
  }
}

const groupColumns = "app_id, id, name, avatar_url, owner_id, member_count, version, created_at, dissolved_at";

function toGroup(r: RowDataPacket): GroupRecord {
  return { appId: r.app_id, id: r.id, name: r.name, avatarUrl: r.avatar_url, ownerId: r.owner_id, memberCount: Number(r.member_count), version: Number(r.version), createdAt: r.created_at, dissolvedAt: r.dissolved_at };
}

function toMember(r: RowDataPacket): GroupMemberRecord {
  return { userId: r.user_id, role: Number(r.role), joinedAt: r.joined_at, joinedSeq: Number(r.joined_seq) };
}

/** The GroupStore on MySQL/MariaDB. */
export class SqlGroupStore implements GroupStore {
  constructor(private readonly db: SqlDatabase) {}

  /** Locks a live group's row for the rest of the transaction; false when absent, of another app, or dissolved. */
  private async lock(tx: SqlExecutor, appId: string, groupId: string): Promise<boolean> {
    const [row] = await tx.query<RowDataPacket>("SELECT id FROM chat_groups WHERE id = ? AND app_id = ? AND dissolved_at IS NULL FOR UPDATE", [groupId, appId]);
    return row !== undefined;
  }

  private async recount(tx: SqlExecutor, groupId: string): Promise<number> {
    await tx.execute("UPDATE chat_groups SET member_count = (SELECT COUNT(*) FROM group_members WHERE group_id = ?), version = version + 1 WHERE id = ?", [groupId, groupId]);
    const [row] = await tx.query<RowDataPacket>("SELECT member_count FROM chat_groups WHERE id = ?", [groupId]);
    return Number(row!.member_count);
  }

  private async existing(tx: SqlExecutor, groupId: string, userIds: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (const ids of chunks(userIds, 1000)) {
      const rows = await tx.query<RowDataPacket>(`SELECT user_id FROM group_members WHERE group_id = ? AND user_id IN (${ids.map(() => "?").join(", ")})`, [groupId, ...ids]);
      for (const r of rows) found.add(r.user_id);
    }
    return found;
  }

  async create(group: Pick<GroupRecord, "appId" | "id" | "name" | "avatarUrl" | "ownerId">, memberIds: readonly string[]): Promise<{ group: GroupRecord; created: boolean }> {
    return this.db.transaction(async (tx) => {
      const res = await tx.execute("INSERT IGNORE INTO chat_groups (app_id, id, name, avatar_url, owner_id, member_count, version) VALUES (?, ?, ?, ?, ?, 0, 0)", [
        group.appId, group.id, group.name, group.avatarUrl, group.ownerId,
      ]);
      const created = res.affectedRows === 1;
      if (created) {
        const ids = [group.ownerId, ...new Set(memberIds.filter((u) => u !== group.ownerId))];
        for (const part of chunks(ids, 1000)) {
          await tx.execute(
            `INSERT INTO group_members (app_id, group_id, user_id, role) VALUES ${part.map(() => "(?, ?, ?, ?)").join(", ")}`,
            part.flatMap((u) => [group.appId, group.id, u, u === group.ownerId ? roles.owner : roles.member]),
          );
        }
        await this.recount(tx, group.id);
      }
      const [row] = await tx.query<RowDataPacket>(`SELECT ${groupColumns} FROM chat_groups WHERE id = ?`, [group.id]);
      return { group: toGroup(row!), created };
    });
  }

  async group(appId: string, groupId: string): Promise<GroupRecord | undefined> {
    const [row] = await this.db.query<RowDataPacket>(`SELECT ${groupColumns} FROM chat_groups WHERE id = ? AND app_id = ?`, [groupId, appId]);
    return row ? toGroup(row) : undefined;
  }

  async update(appId: string, groupId: string, patch: { name?: string; avatarUrl?: string }): Promise<GroupRecord | undefined> {
    const res = await this.db.execute(
      "UPDATE chat_groups SET name = COALESCE(?, name), avatar_url = COALESCE(?, avatar_url), version = version + 1 WHERE id = ? AND app_id = ? AND dissolved_at IS NULL",
      [patch.name ?? null, patch.avatarUrl ?? null, groupId, appId],
    );
    return res.affectedRows === 0 ? undefined : this.group(appId, groupId);
  }

  async member(appId: string, groupId: string, userId: string): Promise<GroupMemberRecord | undefined> {
    const [row] = await this.db.query<RowDataPacket>("SELECT user_id, role, joined_at, joined_seq FROM group_members WHERE group_id = ? AND user_id = ? AND app_id = ?", [groupId, userId, appId]);
    return row ? toMember(row) : undefined;
  }

  async addMembers(appId: string, groupId: string, userIds: readonly string[]): Promise<{ added: string[]; memberCount: number } | undefined> {
    return this.db.transaction(async (tx) => {
      if (!(await this.lock(tx, appId, groupId))) return undefined;
      const present = await this.existing(tx, groupId, userIds);
      const added = [...new Set(userIds)].filter((u) => !present.has(u));
      for (const part of chunks(added, 1000)) {
        await tx.execute(`INSERT INTO group_members (app_id, group_id, user_id, role) VALUES ${part.map(() => "(?, ?, ?, ?)").join(", ")}`, part.flatMap((u) => [appId, groupId, u, roles.member]));
      }
      return { added, memberCount: await this.recount(tx, groupId) };
    });
  }

  async removeMembers(appId: string, groupId: string, userIds: readonly string[]): Promise<{ removed: string[]; memberCount: number } | undefined> {
    return this.db.transaction(async (tx) => {
      if (!(await this.lock(tx, appId, groupId))) return undefined;
      const present = await this.existing(tx, groupId, userIds);
      const removed = [...new Set(userIds)].filter((u) => present.has(u));
      for (const part of chunks(removed, 1000)) {
        await tx.execute(`DELETE FROM group_members WHERE group_id = ? AND user_id IN (${part.map(() => "?").join(", ")})`, [groupId, ...part]);
      }
      return { removed, memberCount: await this.recount(tx, groupId) };
    });
  }

  async setRole(appId: string, groupId: string, userId: string, role: number): Promise<GroupMemberRecord | undefined> {
    const changed = await this.db.transaction(async (tx) => {
      if (!(await this.lock(tx, appId, groupId))) return false;
      const res = await tx.execute("UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ?", [role, groupId, userId]);
      return res.affectedRows > 0 || (await this.existing(tx, groupId, [userId])).size > 0;
    });
    return changed ? this.member(appId, groupId, userId) : undefined;
  }

  async transferOwnership(appId: string, groupId: string, from: string, to: string): Promise<GroupRecord | undefined> {
    const done = await this.db.transaction(async (tx) => {
      if (!(await this.lock(tx, appId, groupId))) return false;
      if ((await this.existing(tx, groupId, [from, to])).size < 2) return false;
      await tx.execute("UPDATE group_members SET role = CASE user_id WHEN ? THEN ? ELSE ? END WHERE group_id = ? AND user_id IN (?, ?)", [to, roles.owner, roles.admin, groupId, from, to]);
      await tx.execute("UPDATE chat_groups SET owner_id = ?, version = version + 1 WHERE id = ?", [to, groupId]);
      return true;
    });
    return done ? this.group(appId, groupId) : undefined;
  }

  async dissolve(appId: string, groupId: string, at: Date): Promise<GroupRecord | undefined> {
    const res = await this.db.execute("UPDATE chat_groups SET dissolved_at = ?, version = version + 1 WHERE id = ? AND app_id = ? AND dissolved_at IS NULL", [at, groupId, appId]);
    return res.affectedRows === 0 ? undefined : this.group(appId, groupId);
  }

  async setJoinedSeq(appId: string, groupId: string, userIds: readonly string[], seq: number): Promise<void> {
    for (const part of chunks(userIds, 1000)) {
      await this.db.execute(`UPDATE group_members SET joined_seq = ? WHERE group_id = ? AND app_id = ? AND user_id IN (${part.map(() => "?").join(", ")})`, [seq, groupId, appId, ...part]);
    }
  }

  async groupsOf(appId: string, userId: string, limit: number, afterGroupId = ""): Promise<GroupRecord[]> {
    const rows = await this.db.query<RowDataPacket>(
      `SELECT ${groupColumns.split(", ").map((c) => `g.${c}`).join(", ")} FROM group_members m JOIN chat_groups g ON g.id = m.group_id
        WHERE m.user_id = ? AND m.app_id = ? AND m.group_id > ? AND g.dissolved_at IS NULL ORDER BY m.group_id LIMIT ?`,
      [userId, appId, afterGroupId, limit],
    );
    return rows.map(toGroup);
  }

  async members(appId: string, groupId: string, limit: number, afterUserId = ""): Promise<GroupMemberRecord[]> {
    const rows = await this.db.query<RowDataPacket>(
      "SELECT user_id, role, joined_at, joined_seq FROM group_members WHERE group_id = ? AND app_id = ? AND user_id > ? ORDER BY user_id LIMIT ?",
      [groupId, appId, afterUserId, limit],
    );
    return rows.map(toMember);
  }

  async memberIds(appId: string, groupId: string): Promise<string[]> {
    const rows = await this.db.query<RowDataPacket>("SELECT user_id FROM group_members WHERE group_id = ? AND app_id = ?", [groupId, appId]);
    return rows.map((r) => r.user_id);
  }
}

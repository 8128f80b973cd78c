import { createHash, randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { GroupRole, GroupSchema, MemberSchema, type Group, type GroupInternalService, type GroupService, type Member } from "../../gen/im/group/v1/group_pb.js";
import { MsgInternalService, SystemContent_Kind } from "../../gen/im/msg/v1/msg_pb.js";
import { UserService } from "../../gen/im/user/v1/user_pb.js";
import { onBehalfOf } from "../../mesh/acting-for.js";
import { requireUser } from "../../mesh/interceptors/auth-interceptor.js";
import type { MeshClients } from "../../mesh/service-client.js";
import type { Kv } from "../../platform/kv/kv.js";
import { roles, type GroupMemberRecord, type GroupRecord, type GroupStore } from "./group-store.js";

/** The largest group: fan-out, read state and typing are sized for it (DESIGN.md §8). */
export const maxGroupMembers = 10_000;

/** What the group handlers work with. */
export interface GroupDeps {
  readonly store: GroupStore;
  readonly clients: MeshClients;
  /** Holds the per-group lock that orders changes of members with their mirror in the conversation. */
  readonly kv: Kv;
}

/** How many users a system message names; the rest are counted in its detail. */
const maxNamedTargets = 50;

/** How long a group's change lock lives at most (a crashed holder releases it by expiry). */
const lockTtlMs = 15_000;

/** A group as the API shows it; its conversation is "g:<group id>". */
export function toGroup(g: GroupRecord): Group {
  return create(GroupSchema, {
    groupId: g.id,
    conversationId: `g:${g.id}`,
    name: g.name,
    avatarUrl: g.avatarUrl,
    ownerId: g.ownerId,
    memberCount: g.memberCount,
    createdAt: timestampFromDate(g.createdAt),
    dissolvedAt: g.dissolvedAt ? timestampFromDate(g.dissolvedAt) : undefined,
  });
}

function toMember(m: GroupMemberRecord): Member {
  return create(MemberSchema, { userId: m.userId, role: m.role as GroupRole, joinedAt: timestampFromDate(m.joinedAt), joinedSeq: BigInt(m.joinedSeq) });
}

/** The group id a CreateGroup request names: the same for a retry of the same request, so creating is idempotent. */
function groupIdFor(appId: string, userId: string, requestId: string): string {
  const h = createHash("sha256").update(`${appId}\n${userId}\n${requestId}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function page(token: string): string | undefined {
  if (token === "") return undefined;
  const id = Buffer.from(token, "base64url").toString();
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new ConnectError("page_token is not one this service returned", Code.InvalidArgument);
  return id;
}

const pageToken = (id: string) => Buffer.from(id).toString("base64url");

/**
 * Builds the group service's handlers: groups, members and roles (DESIGN.md §2). Every change of members is
 * mirrored into the group's conversation by a system message (PostSystemMessage), which is what makes members
 * receive and read from the seq they joined at up to the seq they left at.
 */
export function createGroupServices(deps: GroupDeps): { group: ServiceImpl<typeof GroupService>; internal: ServiceImpl<typeof GroupInternalService> } {
  const { store } = deps;

  /**
   * Runs a change of a group's members under its lock, so the changes reach the conversation in the order they
   * were made in the group (two instances adding and removing the same user concurrently would otherwise leave
   * the two disagreeing).
   */
  const locked = async <T>(groupId: string, change: () => Promise<T>): Promise<T> => {
    const key = `group-lock:${groupId}`;
    const token = randomUUID();
    for (let attempt = 0; !(await deps.kv.set(key, token, { ttlMs: lockTtlMs, ifAbsent: true })); attempt++) {
      if (attempt >= 100) throw new ConnectError(`group ${groupId} is being changed by someone else; retry`, Code.Unavailable);
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
    }
    try {
      return await change();
    } finally {
      if ((await deps.kv.get(key).catch(() => null)) === token) await deps.kv.del(key).catch(() => 0);
    }
  };

  /** The group and the caller's membership; NotFound outside the caller's app, PermissionDenied for non-members. */
  const load = async (appId: string, groupId: string, userId: string) => {
    const group = await store.group(appId, groupId);
    if (group === undefined) throw new ConnectError(`no group ${groupId}`, Code.NotFound);
    const me = await store.member(appId, groupId, userId);
    if (me === undefined) throw new ConnectError(`you are not a member of group ${groupId}`, Code.PermissionDenied);
    return { group, me };
  };

  /** As load, for changes: the group must not be dissolved and the caller must hold one of the roles. */
  const loadForChange = async (appId: string, groupId: string, userId: string, allowed: readonly number[], what: string) => {
    const loaded = await load(appId, groupId, userId);
    if (loaded.group.dissolvedAt !== null) throw new ConnectError(`group ${groupId} was dissolved`, Code.FailedPrecondition);
    if (!allowed.includes(loaded.me.role)) throw new ConnectError(`only the group's ${allowed.length === 1 ? "owner" : "owner and admins"} may ${what}`, Code.PermissionDenied);
    return loaded;
  };

  /** Users of the caller's app among the ids, or NotFound naming those that are not (asked as the caller). */
  const requireUsers = async (ctx: HandlerContext, userIds: readonly string[]) => {
    const users = deps.clients.client(UserService);
    const me = requireUser(ctx);
    const missing: string[] = [];
    for (let i = 0; i < userIds.length; i += 100) {
      const res = await users.batchGetUsers({ userIds: userIds.slice(i, i + 100) }, onBehalfOf(me));
      missing.push(...res.missingUserIds);
    }
    if (missing.length > 0) throw new ConnectError(`no user ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ""} in this app`, Code.NotFound);
  };

  /** Posts the system message of a change into the group's conversation; membership moves with it. */
  const announce = async (
    appId: string,
    groupId: string,
    kind: SystemContent_Kind,
    actor: string,
    change: { targets?: readonly string[]; detail?: string; join?: readonly string[]; leave?: readonly string[]; key?: string },
  ) => {
    const targets = change.targets ?? [];
    const res = await deps.clients.client(MsgInternalService).postSystemMessage({
      appId,
      conversationId: `g:${groupId}`,
      groupId,
      idempotencyKey: change.key ?? randomUUID(),
      // A system message names at most 50 users (it is stored once but copied to every offline member's inbox);
      // the detail then says how many there were.
      content: { kind, actorUserId: actor, targetUserIds: targets.slice(0, maxNamedTargets), detail: change.detail ?? (targets.length > maxNamedTargets ? `${targets.length} users` : "") },
      joinedUserIds: [...(change.join ?? [])],
      leftUserIds: [...(change.leave ?? [])],
    });
    if (res.message && res.joinedUserIds.length > 0) await store.setJoinedSeq(appId, groupId, res.joinedUserIds, Number(res.message.seq));
    return res;
  };

  const group: ServiceImpl<typeof GroupService> = {
    async createGroup(req, ctx) {
      const me = requireUser(ctx);
      const memberIds = req.memberIds.filter((u) => u !== me.userId);
      if (memberIds.length + 1 > maxGroupMembers) throw new ConnectError(`a group holds at most ${maxGroupMembers} members`, Code.InvalidArgument);
      if (memberIds.length > 0) await requireUsers(ctx, memberIds);
      const id = groupIdFor(me.appId, me.userId, req.requestId);
      const { group: created } = await store.create({ appId: me.appId, id, name: req.name, avatarUrl: req.avatarUrl, ownerId: me.userId }, memberIds);
      // A retried request finds the group and posts the same (deduplicated) creation message, which also repairs
      // a creation whose message was not posted the first time.
      const members = await store.memberIds(me.appId, id);
      await announce(me.appId, id, SystemContent_Kind.GROUP_CREATED, me.userId, { targets: members, detail: created.name, join: members, key: "group-created" });
      return { group: toGroup((await store.group(me.appId, id))!) };
    },

    async getGroup(req, ctx) {
      const me = requireUser(ctx);
      const { group: g, me: member } = await load(me.appId, req.groupId, me.userId);
      return { group: toGroup(g), myRole: member.role as GroupRole };
    },

    async updateGroup(req, ctx) {
      const me = requireUser(ctx);
      await loadForChange(me.appId, req.groupId, me.userId, [roles.owner, roles.admin], "change the group");
      const updated = await store.update(me.appId, req.groupId, { name: req.name, avatarUrl: req.avatarUrl });
      if (updated === undefined) throw new ConnectError(`group ${req.groupId} was dissolved`, Code.FailedPrecondition);
      await announce(me.appId, req.groupId, SystemContent_Kind.GROUP_UPDATED, me.userId, { detail: req.name ?? "" });
      return { group: toGroup(updated) };
    },

    async addMembers(req, ctx) {
      const me = requireUser(ctx);
      return locked(req.groupId, async () => {
        const { group: g } = await loadForChange(me.appId, req.groupId, me.userId, [roles.owner, roles.admin], "add members");
        if (g.memberCount + req.userIds.length > maxGroupMembers) {
          const room = maxGroupMembers - g.memberCount;
          throw new ConnectError(`a group holds at most ${maxGroupMembers} members; this one has room for ${Math.max(0, room)} more`, Code.FailedPrecondition);
        }
        await requireUsers(ctx, req.userIds);
        const result = await store.addMembers(me.appId, req.groupId, req.userIds);
        if (result === undefined) throw new ConnectError(`group ${req.groupId} was dissolved`, Code.FailedPrecondition);
        // Under the group's lock every user asked for is now a member, and all of them join the conversation; msg
        // skips those already in it, so a retry after a failure here completes the change.
        const joining = req.userIds;
        const posted = await announce(me.appId, req.groupId, SystemContent_Kind.MEMBERS_ADDED, me.userId, { targets: joining, join: joining });
        return { addedUserIds: [...new Set([...result.added, ...posted.joinedUserIds])], memberCount: result.memberCount };
      });
    },

    async removeMembers(req, ctx) {
      const me = requireUser(ctx);
      return locked(req.groupId, async () => {
        await loadForChange(me.appId, req.groupId, me.userId, [roles.owner, roles.admin], "remove members");
        if (req.userIds.includes(me.userId)) throw new ConnectError("to remove yourself, use LeaveGroup", Code.InvalidArgument);
        const myRole = (await store.member(me.appId, req.groupId, me.userId))!.role;
        for (const u of req.userIds) {
          const target = await store.member(me.appId, req.groupId, u);
          if (target?.role === roles.owner) throw new ConnectError("the owner cannot be removed; the owner may transfer ownership or dissolve the group", Code.PermissionDenied);
          if (target?.role === roles.admin && myRole !== roles.owner) throw new ConnectError("only the owner may remove admins", Code.PermissionDenied);
        }
        const result = await store.removeMembers(me.appId, req.groupId, req.userIds);
        if (result === undefined) throw new ConnectError(`group ${req.groupId} was dissolved`, Code.FailedPrecondition);
        // Everyone named leaves the conversation; msg skips those who are not in it, so a retry completes the change.
        const leaving = req.userIds;
        const posted = await announce(me.appId, req.groupId, SystemContent_Kind.MEMBERS_REMOVED, me.userId, { targets: leaving, leave: leaving });
        return { removedUserIds: [...new Set([...result.removed, ...posted.leftUserIds])], memberCount: result.memberCount };
      });
    },

    async leaveGroup(req, ctx) {
      const me = requireUser(ctx);
      return locked(req.groupId, async () => {
        const { group: g, me: member } = await load(me.appId, req.groupId, me.userId);
        if (g.dissolvedAt !== null) throw new ConnectError(`group ${req.groupId} was dissolved`, Code.FailedPrecondition);
        if (member.role === roles.owner) {
          if (g.memberCount > 1) throw new ConnectError("the owner must transfer ownership (TransferOwnership) before leaving", Code.FailedPrecondition);
          await dissolve(me.appId, req.groupId, me.userId);
          return { dissolved: true };
        }
        await store.removeMembers(me.appId, req.groupId, [me.userId]);
        await announce(me.appId, req.groupId, SystemContent_Kind.MEMBER_LEFT, me.userId, { targets: [me.userId], leave: [me.userId] });
        return { dissolved: false };
      });
    },

    async setMemberRole(req, ctx) {
      const me = requireUser(ctx);
      return locked(req.groupId, async () => {
        // Owner only, as the contract says: an admin who could promote could fill the group with admins.
        await loadForChange(me.appId, req.groupId, me.userId, [roles.owner], "change roles");
        if (req.userId === me.userId) throw new ConnectError("you cannot change your own role; the owner hands over with TransferOwnership", Code.InvalidArgument);
        const target = await store.member(me.appId, req.groupId, req.userId);
        if (target === undefined) throw new ConnectError(`user ${req.userId} is not a member of the group`, Code.NotFound);
        if (target.role === roles.owner) throw new ConnectError("the owner's role changes only with TransferOwnership", Code.PermissionDenied);
        if (target.role === req.role) return { member: toMember(target) };
        const updated = await store.setRole(me.appId, req.groupId, req.userId, req.role);
        if (updated === undefined) throw new ConnectError(`user ${req.userId} is not a member of the group`, Code.NotFound);
        await announce(me.appId, req.groupId, SystemContent_Kind.ROLE_CHANGED, me.userId, { targets: [req.userId], detail: req.role === GroupRole.ADMIN ? "admin" : "member" });
        return { member: toMember(updated) };
      });
    },

    async transferOwnership(req, ctx) {
      const me = requireUser(ctx);
      return locked(req.groupId, async () => {
        await loadForChange(me.appId, req.groupId, me.userId, [roles.owner], "transfer ownership");
        if (req.newOwnerId === me.userId) throw new ConnectError("you already own the group", Code.InvalidArgument);
        const moved = await store.transferOwnership(me.appId, req.groupId, me.userId, req.newOwnerId);
        if (moved === undefined) throw new ConnectError(`user ${req.newOwnerId} is not a member of the group`, Code.NotFound);
        await announce(me.appId, req.groupId, SystemContent_Kind.OWNERSHIP_TRANSFERRED, me.userId, { targets: [req.newOwnerId] });
        return { group: toGroup(moved) };
      });
    },

    async dissolveGroup(req, ctx) {
      const me = requireUser(ctx);
      return locked(req.groupId, async () => {
        await loadForChange(me.appId, req.groupId, me.userId, [roles.owner], "dissolve the group");
        const at = await dissolve(me.appId, req.groupId, me.userId);
        return { dissolvedAt: timestampFromDate(at) };
      });
    },

    async listMyGroups(req, ctx) {
      const me = requireUser(ctx);
      const size = req.pageSize === 0 ? 50 : req.pageSize;
      const rows = await store.groupsOf(me.appId, me.userId, size + 1, page(req.pageToken));
      const groups = rows.slice(0, size);
      return { groups: groups.map(toGroup), nextPageToken: rows.length > size ? pageToken(groups[groups.length - 1]!.id) : "" };
    },

    async listMembers(req, ctx) {
      const me = requireUser(ctx);
      await load(me.appId, req.groupId, me.userId);
      const size = req.pageSize === 0 ? 50 : req.pageSize;
      const rows = await store.members(me.appId, req.groupId, size + 1, page(req.pageToken));
      const members = rows.slice(0, size);
      return { members: members.map(toMember), nextPageToken: rows.length > size ? pageToken(members[members.length - 1]!.userId) : "" };
    },
  };

  /** Marks the group dissolved and ends every member's membership at the dissolution message. */
  const dissolve = async (appId: string, groupId: string, actor: string): Promise<Date> => {
    const at = new Date();
    const done = await store.dissolve(appId, groupId, at);
    if (done === undefined) throw new ConnectError(`group ${groupId} was dissolved`, Code.FailedPrecondition);
    const members = await store.memberIds(appId, groupId);
    await announce(appId, groupId, SystemContent_Kind.GROUP_DISSOLVED, actor, { leave: members, key: "group-dissolved" });
    return at;
  };

  const internal: ServiceImpl<typeof GroupInternalService> = {
    async isMember(req) {
      const g = await store.group(req.appId, req.groupId);
      const m = g && (await store.member(req.appId, req.groupId, req.userId));
      return { member: m !== undefined && g?.dissolvedAt === null, role: (m?.role ?? 0) as GroupRole, joinedSeq: BigInt(m?.joinedSeq ?? 0), dissolved: g?.dissolvedAt != null };
    },
    async getMemberIds(req) {
      const g = await store.group(req.appId, req.groupId);
      if (g === undefined) throw new ConnectError(`no group ${req.groupId}`, Code.NotFound);
      return { userIds: await store.memberIds(req.appId, req.groupId), version: BigInt(g.version) };
    },
  };

  return { group, internal };
}

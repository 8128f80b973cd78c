import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type User, UserSchema, type UserService } from "../../gen/im/user/v1/user_pb.js";
import { requireUser } from "../../mesh/interceptors/auth-interceptor.js";
import type { Kv } from "../../platform/kv/kv.js";
import type { Profile, ProfileStore } from "./profile-store.js";

/** Cached profiles live five minutes; an update drops the entry at once. */
const cacheTtlMs = 5 * 60_000;


/** A profile as the caller may see it: the email only on their own. */
function toUser(p: Profile, viewerId: string): User {
  return create(UserSchema, {
    userId: p.id,
    username: p.username,
    displayName: p.displayName,
    avatarUrl: p.avatarUrl,
    email: p.id === viewerId ? (p.email ?? "") : "",
    createdAt: timestampFromDate(p.createdAt),
    updatedAt: timestampFromDate(p.updatedAt),
  });
}

function encodeCursor(after: string): string {
  return Buffer.from(after, "utf8").toString("base64url");
}

function decodeCursor(token: string): string | undefined {
  if (token === "") return undefined;
  const after = Buffer.from(token, "base64url").toString("utf8");
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/.test(after)) throw new ConnectError("page_token is not one this service returned", Code.InvalidArgument);
  return after;
}

/** The user service's handlers: profiles within the caller's app, cached in kv. */
export function createUserService(deps: { profiles: ProfileStore; kv: Kv }): ServiceImpl<typeof UserService> {
  const cacheKey = (appId: string, id: string) => `profile:${appId}:${id}`;

  const cachedProfile = async (appId: string, id: string): Promise<Profile | undefined> => {
    const hit = await deps.kv.get(cacheKey(appId, id));
    if (hit !== null) {
      const p = JSON.parse(hit) as Profile & { createdAt: string; updatedAt: string };
      return { ...p, createdAt: new Date(p.createdAt), updatedAt: new Date(p.updatedAt) };
    }
    const profile = await deps.profiles.get(appId, id);
    if (profile !== undefined) await deps.kv.set(cacheKey(appId, id), JSON.stringify(profile), { ttlMs: cacheTtlMs });
    return profile;
  };

  return {
    async getUser(req, ctx) {
      const me = requireUser(ctx);
      const profile = await cachedProfile(me.appId, req.userId);
      if (profile === undefined) throw new ConnectError(`no user ${req.userId} in this app`, Code.NotFound);
      return { user: toUser(profile, me.userId) };
    },

    async batchGetUsers(req, ctx) {
      const me = requireUser(ctx);
      const profiles = await deps.profiles.batchGet(me.appId, req.userIds);
      const found = new Set(profiles.map((p) => p.id));
      return { users: profiles.map((p) => toUser(p, me.userId)), missingUserIds: req.userIds.filter((id) => !found.has(id)) };
    },

    async updateProfile(req, ctx) {
      const me = requireUser(ctx);
      const displayName = req.displayName?.trim();
      if (displayName !== undefined && displayName === "") throw new ConnectError("display_name cannot be blank", Code.InvalidArgument);
      if (req.avatarUrl !== undefined && req.avatarUrl !== "") {
        let url: URL | undefined;
        try {
          url = new URL(req.avatarUrl);
        } catch {
          url = undefined;
        }
        if (url?.protocol !== "https:") throw new ConnectError("avatar_url must be an https URL, or empty to remove the avatar", Code.InvalidArgument);
      }
      const updated = await deps.profiles.update(me.appId, me.userId, { displayName, avatarUrl: req.avatarUrl });
      await deps.kv.del(cacheKey(me.appId, me.userId));
      if (updated === undefined) throw new ConnectError("your account no longer exists", Code.NotFound);
      return { user: toUser(updated, me.userId) };
    },

    async searchUsers(req, ctx) {
      const me = requireUser(ctx);
      const page = await deps.profiles.search(me.appId, req.query, req.pageSize || 20, decodeCursor(req.pageToken));
      return {
        users: page.profiles.map((p) => toUser(p, me.userId)),
        nextPageToken: page.nextAfter === undefined ? "" : encodeCursor(page.nextAfter),
      };
    },
  };
}

import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PresenceStatus } from "../../gen/im/gateway/v1/gateway_pb.js";
import type { Route, RouteTable } from "../../mesh/routes.js";
import type { Kv } from "../../platform/kv/kv.js";
import type { Connection } from "./connection.js";

/** At most this many users one stream follows (its 1:1 peers included). */
export const maxFollowed = 1_000;

/** How long a user's last device may be gone before followers hear "offline" (a reconnect within it is silent). */
const defaultFlapMs = 3_000;

/** last_seen is kept this long after a user's last device closed. */
const lastSeenTtlMs = 30 * 86_400_000;

const userKey = (appId: string, userId: string) => `${appId}/${userId}`;

/**
 * Presence from the routes in etcd (DESIGN.md §2 gateway): a user is online while any device of theirs has a route,
 * which lives with its gateway's lease, so a gateway that dies takes its users offline when the lease expires.
 * Streams follow users; changes reach them as presence frames, with going offline held back for a few seconds so
 * a flapping connection does not spam its followers. `last_seen` is kept in kv.
 */
export class PresenceTracker {
  private readonly followers = new Map<string, Set<Connection>>();
  private readonly following = new Map<Connection, string[]>();
  /** Users whose "offline" is waiting out the flap window. */
  private readonly leaving = new Map<string, NodeJS.Timeout>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly routes: RouteTable,
    private readonly kv: Kv,
    private readonly flapMs = defaultFlapMs,
  ) {
    this.unsubscribe = routes.subscribe((route, online) => this.changed(route, online));
  }

  private online(appId: string, userId: string): boolean {
    return this.routes.devices(appId, userId).length > 0;
  }

  private changed(route: Route, online: boolean): void {
    const key = userKey(route.appId, route.userId);
    if (!this.followers.has(key)) return;
    const timer = this.leaving.get(key);
    if (online) {
      // Back within the flap window: followers never heard it was gone.
      if (timer) {
        clearTimeout(timer);
        this.leaving.delete(key);
      } else if (this.routes.devices(route.appId, route.userId).length === 1) this.notify(route.appId, route.userId, PresenceStatus.ONLINE);
      return;
    }
    if (this.online(route.appId, route.userId) || timer) return;
    const gone = new Date();
    this.leaving.set(
      key,
      setTimeout(() => {
        this.leaving.delete(key);
        if (!this.online(route.appId, route.userId)) this.notify(route.appId, route.userId, PresenceStatus.OFFLINE, gone);
      }, this.flapMs).unref(),
    );
  }

  private notify(appId: string, userId: string, status: PresenceStatus, lastSeen?: Date): void {
    for (const conn of this.followers.get(userKey(appId, userId)) ?? []) {
      conn.send({ body: { case: "presence", value: { userId, status, lastSeen: lastSeen ? timestampFromDate(lastSeen) : undefined } } });
    }
  }

  /** Replaces what the stream follows (same app only) and sends it the current state of each. */
  async follow(conn: Connection, userIds: readonly string[]): Promise<void> {
    const { appId } = conn.identity;
    const wanted = [...new Set(userIds)].filter((u) => u !== conn.identity.userId).slice(0, maxFollowed);
    this.unfollow(conn);
    this.following.set(conn, wanted.map((u) => userKey(appId, u)));
    for (const u of wanted) {
      const key = userKey(appId, u);
      let set = this.followers.get(key);
      if (set === undefined) this.followers.set(key, (set = new Set()));
      set.add(conn);
    }
    const offline = wanted.filter((u) => !this.online(appId, u) || this.leaving.has(userKey(appId, u)));
    const seen = offline.length > 0 ? await this.kv.getMany(offline.map((u) => `last_seen:${appId}:${u}`)) : [];
    const lastSeen = new Map(offline.map((u, i) => [u, seen[i]]));
    for (const u of wanted) {
      const isOffline = lastSeen.has(u);
      const at = Number(lastSeen.get(u) ?? 0);
      conn.send({
        body: {
          case: "presence",
          value: { userId: u, status: isOffline ? PresenceStatus.OFFLINE : PresenceStatus.ONLINE, lastSeen: isOffline && at > 0 ? timestampFromDate(new Date(at)) : undefined },
        },
      });
    }
  }

  /** Drops every follow of the stream (when it closes). */
  unfollow(conn: Connection): void {
    for (const key of this.following.get(conn) ?? []) {
      const set = this.followers.get(key);
      set?.delete(conn);
      if (set?.size === 0) this.followers.delete(key);
    }
    this.following.delete(conn);
  }

  /** Records when a device of the user closed here (the last one's time is what followers see later). */
  async closed(appId: string, userId: string): Promise<void> {
    await this.kv.set(`last_seen:${appId}:${userId}`, String(Date.now()), { ttlMs: lastSeenTtlMs });
  }

  close(): void {
    this.unsubscribe();
    for (const t of this.leaving.values()) clearTimeout(t);
  }
}

// The SDK's session: the signed-in user's tokens, kept fresh. The refresh token is single-use and the auth service
// ends the whole session when one comes back a second time (a replay), so refreshes never overlap.
import type { Client } from "@connectrpc/connect";
import type { AuthService, Session } from "../gen/im/auth/v1/auth_pb.js";

/** Refresh when the access token has less than this left. */
const refreshAheadMs = 60_000;

/** Holds the session and rotates its tokens one refresh at a time, for every caller that needs a fresh token. */
export class SessionTokens {
  session: Session | undefined;
  private refreshing: Promise<void> | undefined;

  /** `auth` is read at each refresh: the client's auth client follows the gateway it uses. */
  constructor(private readonly auth: () => Client<typeof AuthService>) {}

  headers(): { authorization: string } {
    return { authorization: `Bearer ${this.session?.tokens?.accessToken ?? ""}` };
  }

  /** Rotates the tokens after any refresh in flight (never beside it); rejects when the session was ended. */
  rotate(): Promise<void> {
    const before = this.refreshing;
    const run = (async () => {
      await before?.catch(() => {});
      const session = this.session;
      if (!session) throw new Error("not signed in");
      const res = await this.auth().refreshToken({ refreshToken: session.tokens?.refreshToken ?? "" });
      // A session restored or signed in meanwhile is newer than this refresh.
      if (this.session === session) this.session = res.session ?? session;
    })();
    this.refreshing = run;
    void run.then(
      () => this.settled(run),
      () => this.settled(run),
    );
    return run;
  }

  /**
   * Makes sure the access token has more than a minute left: joins a refresh in flight (its tokens are fresh),
   * or starts one when needed.
   */
  fresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    const expires = this.session?.tokens?.accessExpiresAt;
    if (!this.session || !expires || Number(expires.seconds) * 1000 - Date.now() > refreshAheadMs) return Promise.resolve();
    return this.rotate();
  }

  private settled(run: Promise<void>): void {
    if (this.refreshing === run) this.refreshing = undefined;
  }
}

// Who may use a conversation and change a message in it: the msg service's access policies, apart from its
// handlers. Conversation ids name their kind: "s:<user>:<user>" for 1:1 (derived, so either side finds it) and
// "g:<group id>" for a group's.
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { UserService } from "../../gen/im/user/v1/user_pb.js";
import { onBehalfOf } from "../../mesh/acting-for.js";
import { requireUser } from "../../mesh/interceptors/auth-interceptor.js";
import type { MeshClients } from "../../mesh/service-client.js";
import type { MessageStore, StoredMessage } from "./message-store.js";
import { systemContentType } from "./message-view.js";

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The two members named by a 1:1 conversation id, or undefined when the id is not one. */
export function directMembers(conversationId: string): [string, string] | undefined {
  const direct = /^s:([0-9a-f-]{36}):([0-9a-f-]{36})$/.exec(conversationId);
  return direct ? [direct[1]!, direct[2]!] : undefined;
}

/** The group id of a group conversation id ("g:<group id>"), or undefined for any other conversation. */
export function groupOf(conversationId: string): string | undefined {
  return conversationId.startsWith("g:") ? conversationId.slice(2) : undefined;
}

/** The 1:1 conversation id of two users: "s:" and both ids in order, so both sides derive the same one. */
export function directConversationId(a: string, b: string): string {
  return a < b ? `s:${a}:${b}` : `s:${b}:${a}`;
}

/**
 * What a caller who is not in a conversation hears about it, whether or not it exists: otherwise the answer tells
 * them which conversations exist (and so who has talked to whom, since 1:1 ids are derived from user ids).
 */
export function noSuchConversation(conversationId: string): ConnectError {
  return new ConnectError(`no conversation ${conversationId} that you are a member of`, Code.NotFound);
}

/** The access policies of the msg service over its store. */
export class ConversationAccess {
  /**
   * 1:1 conversations known to exist, by `${app} ${id}`: their members are the two ids in the id and never change,
   * so once seen, sending to one needs no membership query.
   */
  private readonly knownDirect = new Set<string>();

  constructor(
    private readonly store: MessageStore,
    private readonly clients: MeshClients,
    /** How long after sending the sender may still edit or recall a message. */
    private readonly editWindowMs: number,
  ) {}

  private rememberDirect(appId: string, id: string): void {
    if (this.knownDirect.size >= 100_000) this.knownDirect.delete(this.knownDirect.values().next().value!);
    this.knownDirect.add(`${appId} ${id}`);
  }

  /**
   * The members of the conversation a sender may use (creating a 1:1 one on first use); NotFound for one the caller
   * is not in (noSuchConversation), PermissionDenied for one they left.
   */
  async open(ctx: HandlerContext, appId: string, userId: string, conversationId: string, create: boolean): Promise<string[]> {
    const { store } = this;
    if (this.knownDirect.has(`${appId} ${conversationId}`)) {
      const members = conversationId.split(":").slice(1);
      if (!members.includes(userId)) throw noSuchConversation(conversationId);
      return members;
    }
    const conversation = await store.conversation(appId, conversationId);
    if (conversation === undefined) {
      const direct = directMembers(conversationId);
      if (!create || direct === undefined || !uuid.test(direct[0]) || !uuid.test(direct[1]) || direct[0] >= direct[1] || !direct.includes(userId)) {
        throw noSuchConversation(conversationId);
      }
      const peer = direct[0] === userId ? direct[1] : direct[0];
      // The peer must be a user of the caller's own app: the user service answers NotFound for anyone else.
      await this.clients
        .client(UserService)
        .getUser({ userId: peer }, onBehalfOf(requireUser(ctx)))
        .catch((err: unknown) => {
          const ce = ConnectError.from(err);
          throw ce.code === Code.NotFound ? new ConnectError(`no user ${peer} in this app`, Code.NotFound) : ce;
        });
      await store.ensureDirect(appId, conversationId, direct);
      this.rememberDirect(appId, conversationId);
      return direct;
    }
    const member = await store.membership(appId, conversationId, userId);
    if (member === undefined) throw noSuchConversation(conversationId);
    if (member.leftSeq !== null) throw new ConnectError(`you are no longer a member of ${conversationId}`, Code.PermissionDenied);
    if (conversation.type === 1) {
      this.rememberDirect(appId, conversationId);
      return conversationId.split(":").slice(1);
    }
    return store.members(appId, conversationId);
  }

  /** The conversation and the caller's membership (current or past), for reading it; noSuchConversation otherwise. */
  async requireMember(appId: string, conversationId: string, userId: string) {
    const conversation = await this.store.conversation(appId, conversationId);
    const member = conversation && (await this.store.membership(appId, conversationId, userId));
    if (conversation === undefined || member === undefined) throw noSuchConversation(conversationId);
    return { conversation, member };
  }

  /** The caller and their own message, when they may still edit or recall it (never a system message). */
  async editable(ctx: HandlerContext, conversationId: string, seq: bigint): Promise<{ me: ReturnType<typeof requireUser>; m: StoredMessage }> {
    const me = requireUser(ctx);
    await this.requireMember(me.appId, conversationId, me.userId);
    const m = await this.store.message(me.appId, conversationId, Number(seq));
    if (m === undefined) throw new ConnectError(`no message ${seq} in ${conversationId}`, Code.NotFound);
    // A system message records a change of the group (who added whom): its actor must not be able to hide it.
    if (m.contentType === systemContentType) throw new ConnectError("system messages cannot be recalled or edited", Code.PermissionDenied);
    if (m.senderId !== me.userId) throw new ConnectError("only the sender may change a message", Code.PermissionDenied);
    if (Date.now() - m.createdAt.getTime() > this.editWindowMs) {
      throw new ConnectError(`messages can be changed for ${Math.round(this.editWindowMs / 60_000)} minutes after sending`, Code.FailedPrecondition);
    }
    if (m.recalled) throw new ConnectError("the message was recalled", Code.FailedPrecondition);
    return { me, m };
  }
}

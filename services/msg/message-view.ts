// How stored rows become the API's messages, and the small codecs around them (content kinds, search text, flags,
// page tokens), apart from the handlers that use them.
import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ConversationType, MessageContentSchema, MessageFlag, MessageSchema, type Message, type MessageContent } from "../../gen/im/msg/v1/msg_pb.js";
import { flagBits, type StoredMessage } from "./message-store.js";

/** The stored content type of a message's content: 1 text, 2 media, 3 custom, 4 system. */
export function contentType(content: MessageContent): number {
  switch (content.kind.case) {
    case "text":
      return 1;
    case "media":
      return 2;
    case "custom":
      return 3;
    default:
      return 4;
  }
}

/** The stored content type of system messages, which no one may edit or recall. */
export const systemContentType = 4;

/** The text search finds a message by: a text's text, a media caption, nothing for other kinds. */
export function searchText(content: MessageContent): string | null {
  if (content.kind.case === "text") return content.kind.value.text;
  if (content.kind.case === "media") return content.kind.value.caption || null;
  return null;
}

/** The stored bit of each API flag. */
export const flagOf: Record<number, number> = { [MessageFlag.READ]: flagBits.read, [MessageFlag.STARRED]: flagBits.starred, [MessageFlag.MENTIONED]: flagBits.mentioned };

function flagList(bits: number): MessageFlag[] {
  return [MessageFlag.READ, MessageFlag.STARRED, MessageFlag.MENTIONED].filter((f) => bits & flagOf[f]!);
}

/** A stored row as the API's Message. */
export function toMessage(m: StoredMessage, flags = 0): Message {
  return create(MessageSchema, {
    conversationId: m.conversationId,
    seq: BigInt(m.seq),
    msgId: m.msgId,
    clientMsgId: m.clientMsgId,
    senderId: m.senderId,
    senderDeviceId: m.senderDeviceId,
    content: m.recalled ? undefined : fromBinary(MessageContentSchema, m.body),
    createdAt: timestampFromDate(m.createdAt),
    editedAt: m.editedAt ? timestampFromDate(m.editedAt) : undefined,
    recalled: m.recalled,
    flags: flagList(flags),
    conversationType: m.conversationId.startsWith("g:") ? ConversationType.GROUP : ConversationType.SINGLE,
  });
}

/** An opaque page token for a cursor value. */
export function encodeCursor(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** The cursor of a page token this service returned, undefined for the first page; InvalidArgument for any other. */
export function decodeCursor<T>(token: string, check: (v: unknown) => v is T): T | undefined {
  if (token === "") return undefined;
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString());
    if (check(v)) return v;
  } catch {
    // fall through
  }
  throw new ConnectError("page_token is not one this service returned", Code.InvalidArgument);
}

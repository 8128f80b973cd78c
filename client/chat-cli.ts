// `npm run chat -- --user alice [--to bob] [--url http://127.0.0.1:8080]`: a terminal chat on the SDK. Type a line
// to send it to the current peer or group; /help lists the commands (/to, /group …, /join, /who, /quit).
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline/promises";
import { parseArgs } from "node:util";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import { PresenceStatus } from "../gen/im/gateway/v1/gateway_pb.js";
import { SystemContent_Kind, type Message, type SystemContent } from "../gen/im/msg/v1/msg_pb.js";
import { ImClient, SendError } from "./im-client.js";

const { values } = parseArgs({
  options: {
    user: { type: "string" },
    password: { type: "string", default: "demo-password" },
    to: { type: "string" },
    url: { type: "string", default: process.env.IM_URL ?? "http://127.0.0.1:8080" },
    "api-key": { type: "string", default: process.env.IM_API_KEY ?? "demo-api-key" },
    device: { type: "string" },
  },
});

if (!values.user) {
  process.stderr.write("usage: npm run chat -- --user <username> [--to <username>] [--password …] [--url …] [--api-key …]\n");
  process.stderr.write("       with `npm start` running, try: npm run chat -- --user alice --to bob   (password demo-password)\n");
  process.exit(2);
}

const color = process.stdout.isTTY ? (code: number, text: string) => `\x1b[${code}m${text}\x1b[0m` : (_: number, text: string) => text;
const names = new Map<string, string>();
/** Where typed lines go: a user (1:1) or a group's conversation. */
let peer: { kind: "user"; id: string; name: string } | { kind: "group"; id: string; conversationId: string; name: string } | undefined;
const groupNames = new Map<string, string>();
const typingShown = new Map<string, NodeJS.Timeout>();
const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });

/** Prints above the prompt without mangling what the user is typing. */
function print(line: string): void {
  if (process.stdout.isTTY) {
    process.stdout.write(`\r\x1b[K${line}\n`);
    rl.prompt(true);
  } else process.stdout.write(`${line}\n`);
}

const nameOf = (userId: string) => (userId === client.userId ? "you" : (names.get(userId) ?? userId.slice(0, 8)));

/** A system message as a line: "alice added bob, carol". */
function describe(s: SystemContent): string {
  const who = nameOf(s.actorUserId);
  const targets = s.targetUserIds.map(nameOf).join(", ") + (s.detail.endsWith(" users") ? ` (${s.detail})` : "");
  switch (s.kind) {
    case SystemContent_Kind.GROUP_CREATED:
      return `${who} created the group "${s.detail}"`;
    case SystemContent_Kind.MEMBERS_ADDED:
      return `${who} added ${targets}`;
    case SystemContent_Kind.MEMBERS_REMOVED:
      return `${who} removed ${targets}`;
    case SystemContent_Kind.MEMBER_LEFT:
      return `${who} left`;
    case SystemContent_Kind.ROLE_CHANGED:
      return `${who} made ${targets} ${s.detail}`;
    case SystemContent_Kind.OWNERSHIP_TRANSFERRED:
      return `${who} handed the group to ${targets}`;
    case SystemContent_Kind.GROUP_UPDATED:
      return `${who} renamed the group to "${s.detail}"`;
    case SystemContent_Kind.GROUP_DISSOLVED:
      return `${who} dissolved the group`;
    default:
      return `${who}: group event`;
  }
}

function textOf(m: Message): string {
  if (m.recalled) return color(2, "(recalled)");
  const c = m.content?.kind;
  if (c?.case === "text") return c.value.text;
  if (c?.case === "system") return color(2, describe(c.value));
  if (c?.case === "media") return `[${c.value.mimeType}] ${c.value.url}`;
  return `[${c?.case ?? "empty"}]`;
}

const client = new ImClient(
  { baseUrl: values.url!, apiKey: values["api-key"]!, deviceId: values.device ?? `cli-${randomUUID().slice(0, 8)}` },
  {
    message: (m) => {
      const time = m.createdAt ? timestampDate(m.createdAt).toLocaleTimeString() : "";
      const who = m.senderId === client.userId ? "me (other device)" : (names.get(m.senderId) ?? m.senderId.slice(0, 8));
      const group = m.conversationId.startsWith("g:") ? color(35, `[${groupNames.get(m.conversationId.slice(2)) ?? "group"}] `) : "";
      if (m.content?.kind.case === "system") print(`${color(2, time)} ${group}${textOf(m)}`);
      else print(`${color(2, time)} ${group}${color(36, who)}: ${textOf(m)}`);
      void client.api.msg.markRead({ conversationId: m.conversationId, seq: m.seq }, { headers: client.api.headers() }).catch(() => {});
    },
    receipt: (r) => r.userId !== client.userId && print(color(2, `  ✓ read by ${names.get(r.userId) ?? r.userId.slice(0, 8)} up to #${r.lastReadSeq}`)),
    presence: (p) => {
      const seen = p.lastSeen ? ` (last seen ${timestampDate(p.lastSeen).toLocaleTimeString()})` : "";
      print(color(p.status === PresenceStatus.ONLINE ? 32 : 2, `  ● ${nameOf(p.userId)} is ${p.status === PresenceStatus.ONLINE ? "online" : `offline${seen}`}`));
    },
    typing: (t) => {
      // "… is typing" shows once per burst; the sender renews it every few seconds while typing.
      const key = `${t.conversationId} ${t.userId}`;
      if (t.typing && !typingShown.has(key)) print(color(2, `  ${nameOf(t.userId)} is typing…`));
      clearTimeout(typingShown.get(key));
      if (t.typing) typingShown.set(key, setTimeout(() => typingShown.delete(key), 6000));
      else typingShown.delete(key);
    },
    event: (e) => print(color(2, `  ${e.message?.senderId === client.userId ? "you" : "they"} ${e.kind === 1 ? "edited" : "recalled"} #${e.message?.seq}`)),
    state: (s, detail) => print(color(s === "connected" ? 32 : 33, `[${s}${detail ? `: ${detail}` : ""}]`)),
  },
);

const users = () => createClient(UserService, createGrpcTransport({ baseUrl: values.url! }));

async function lookup(username: string): Promise<{ kind: "user"; id: string; name: string }> {
  const res = await users().searchUsers({ query: username, pageSize: 10 }, { headers: client.api.headers() });
  const u = res.users.find((x) => x.username.toLowerCase() === username.toLowerCase());
  if (!u) throw new Error(`no user "${username}"`);
  names.set(u.userId, u.displayName || u.username);
  return { kind: "user", id: u.userId, name: u.displayName || u.username };
}

/** The caller's groups, remembered by name for display and /join. */
async function myGroups(): Promise<{ groupId: string; conversationId: string; name: string; memberCount: number }[]> {
  const res = await client.api.group.listMyGroups({ pageSize: 100 }, { headers: client.api.headers() });
  for (const g of res.groups) groupNames.set(g.groupId, g.name);
  return res.groups;
}

function enterGroup(g: { groupId: string; conversationId: string; name: string }): void {
  peer = { kind: "group", id: g.groupId, conversationId: g.conversationId, name: g.name };
  groupNames.set(g.groupId, g.name);
  rl.setPrompt(`#${g.name}> `);
  print(`in group ${g.name} (${g.conversationId})`);
}

const help = [
  "  <text>                     send to the current peer or group",
  "  /to <user>                 talk to a user",
  "  /group create <name> [user …]   create a group (you own it) and enter it",
  "  /group add <user …>        add users to the current group (owner and admins)",
  "  /group remove <user …>     remove users from the current group",
  "  /group leave               leave the current group",
  "  /groups                    list your groups",
  "  /join <group>              enter one of your groups, by name or id",
  "  /who                       your conversations with unread counts",
  "  /quit",
].join("\n");

/** Runs a /group or /join command; true when the line was one. */
async function groupCommand(text: string): Promise<boolean> {
  const as = { headers: client.api.headers() };
  const [command, sub, ...rest] = text.split(/\s+/);
  if (command === "/groups") {
    const groups = await myGroups();
    if (groups.length === 0) print("  no groups yet: /group create <name> [user …]");
    for (const g of groups) print(`  ${g.name}  (${g.memberCount} members)  ${g.groupId}`);
    return true;
  }
  if (command === "/join") {
    const wanted = [sub, ...rest].join(" ").trim().toLowerCase();
    const g = (await myGroups()).find((x) => x.groupId === wanted || x.name.toLowerCase() === wanted);
    if (!g) print(`you are not in a group "${wanted}"; /groups lists yours`);
    else enterGroup(g);
    return true;
  }
  if (command !== "/group") return false;
  if (sub === "create") {
    const [name, ...usernames] = rest;
    if (!name) return print("usage: /group create <name> [user …]"), true;
    const members = await Promise.all(usernames.map(lookup));
    const { group } = await client.api.group.createGroup({ requestId: randomUUID(), name, memberIds: members.map((m) => m.id) }, as);
    enterGroup(group!);
    return true;
  }
  if (peer?.kind !== "group") return print("enter a group first: /join <group> or /group create <name>"), true;
  const groupId = peer.id;
  if (sub === "add" || sub === "remove") {
    const targets = await Promise.all(rest.map(lookup));
    if (targets.length === 0) return print(`usage: /group ${sub} <user …>`), true;
    const userIds = targets.map((t) => t.id);
    const res = sub === "add" ? await client.api.group.addMembers({ groupId, userIds }, as) : await client.api.group.removeMembers({ groupId, userIds }, as);
    print(color(2, `  ${res.memberCount} members now`));
    return true;
  }
  if (sub === "leave") {
    const res = await client.api.group.leaveGroup({ groupId }, as);
    print(res.dissolved ? "you were the last member: the group is dissolved" : `you left ${peer.name}`);
    peer = undefined;
    rl.setPrompt("> ");
    return true;
  }
  print(help);
  return true;
}

try {
  await client.login(values.user, values.password!);
} catch (err) {
  process.stderr.write(`cannot sign in at ${values.url}: ${ConnectError.from(err).rawMessage}\n(is \`npm start\` running?)\n`);
  process.exit(1);
}
await client.connect();
if (values.to) peer = await lookup(values.to).catch((e: Error) => (print(e.message), undefined));
await myGroups().catch(() => []);
client.followPresence(peer?.kind === "user" ? [peer.id] : []);
// Keystrokes tell the current conversation "typing" (at most every 2 s; the server limits it too).
let lastTyping = 0;
process.stdin.on("keypress", () => {
  if (!peer || Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  const [first, second] = peer.kind === "user" ? [client.userId, peer.id].sort() : [];
  client.sendTyping(peer.kind === "group" ? peer.conversationId : `s:${first}:${second}`);
});
for (const u of ["alice", "bob", "charlie", "carol"]) void lookup(u).catch(() => {});
print(`signed in as ${values.user}. ${peer ? `talking to ${peer.name}.` : "use /to <user> or /join <group>."} /help lists the commands.`);
rl.setPrompt(peer ? `${peer.name}> ` : "> ");
rl.prompt();

rl.on("line", (line) => {
  void (async () => {
    const text = line.trim();
    if (text === "") return rl.prompt();
    if (text === "/quit") {
      client.close();
      rl.close();
      process.exit(0);
    }
    if (text.startsWith("/to ")) {
      try {
        peer = await lookup(text.slice(4).trim());
        client.followPresence([peer.id]);
        rl.setPrompt(`${peer.name}> `);
        print(`talking to ${peer.name}`);
      } catch (e) {
        print((e as Error).message);
      }
      return;
    }
    if (text === "/help") return print(help);
    if (text === "/who") {
      const list = await client.api.msg.listConversations({}, { headers: client.api.headers() });
      for (const c of list.conversations) {
        const title = c.groupId ? `#${groupNames.get(c.groupId) ?? c.groupId.slice(0, 8)}` : nameOf(c.peerUserId);
        print(`  ${title}  unread ${c.unreadCount}${c.unreadMentions > 0n ? color(33, ` (@ ${c.unreadMentions})`) : ""}  ${c.lastMessage ? textOf(c.lastMessage).slice(0, 40) : ""}`);
      }
      return;
    }
    try {
      if (await groupCommand(text)) return;
    } catch (e) {
      return print(color(31, `  ${e instanceof ConnectError ? e.rawMessage : (e as Error).message}`));
    }
    if (!peer) return print("pick someone first: /to <user> or /join <group>");
    try {
      const res = await client.sendText(peer.kind === "user" ? { peerUserId: peer.id } : { conversationId: peer.conversationId }, text);
      print(color(2, `  sent #${res.seq}`));
    } catch (e) {
      print(color(31, `  not sent: ${e instanceof SendError ? e.message : String(e)}`));
    }
  })();
});
rl.on("close", () => {
  client.close();
  process.exit(0);
});

// `npm run chat -- --user alice [--to bob] [--url http://127.0.0.1:8080]`: a terminal chat on the SDK. Type a line
// to send it to the current peer; /to <user> switches peer, /who lists conversations, /quit leaves.
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline/promises";
import { parseArgs } from "node:util";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import type { Message } from "../gen/im/msg/v1/msg_pb.js";
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
let peer: { id: string; name: string } | undefined;
const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });

/** Prints above the prompt without mangling what the user is typing. */
function print(line: string): void {
  if (process.stdout.isTTY) {
    process.stdout.write(`\r\x1b[K${line}\n`);
    rl.prompt(true);
  } else process.stdout.write(`${line}\n`);
}

function textOf(m: Message): string {
  if (m.recalled) return color(2, "(recalled)");
  const c = m.content?.kind;
  if (c?.case === "text") return c.value.text;
  if (c?.case === "media") return `[${c.value.mimeType}] ${c.value.url}`;
  return `[${c?.case ?? "empty"}]`;
}

const client = new ImClient(
  { baseUrl: values.url!, apiKey: values["api-key"]!, deviceId: values.device ?? `cli-${randomUUID().slice(0, 8)}` },
  {
    message: (m) => {
      const time = m.createdAt ? timestampDate(m.createdAt).toLocaleTimeString() : "";
      const who = m.senderId === client.userId ? "me (other device)" : (names.get(m.senderId) ?? m.senderId.slice(0, 8));
      print(`${color(2, time)} ${color(36, who)}: ${textOf(m)}`);
      void client.api.msg.markRead({ conversationId: m.conversationId, seq: m.seq }, { headers: client.api.headers() }).catch(() => {});
    },
    receipt: (r) => print(color(2, `  ✓ read by ${names.get(r.userId) ?? r.userId.slice(0, 8)} up to #${r.lastReadSeq}`)),
    event: (e) => print(color(2, `  ${e.message?.senderId === client.userId ? "you" : "they"} ${e.kind === 1 ? "edited" : "recalled"} #${e.message?.seq}`)),
    state: (s, detail) => print(color(s === "connected" ? 32 : 33, `[${s}${detail ? `: ${detail}` : ""}]`)),
  },
);

const users = () => createClient(UserService, createGrpcTransport({ baseUrl: values.url! }));

async function lookup(username: string): Promise<{ id: string; name: string }> {
  const res = await users().searchUsers({ query: username, pageSize: 10 }, { headers: client.api.headers() });
  const u = res.users.find((x) => x.username.toLowerCase() === username.toLowerCase());
  if (!u) throw new Error(`no user "${username}"`);
  names.set(u.userId, u.displayName || u.username);
  return { id: u.userId, name: u.displayName || u.username };
}

try {
  await client.login(values.user, values.password!);
} catch (err) {
  process.stderr.write(`cannot sign in at ${values.url}: ${ConnectError.from(err).rawMessage}\n(is \`npm start\` running?)\n`);
  process.exit(1);
}
await client.connect();
if (values.to) peer = await lookup(values.to).catch((e: Error) => (print(e.message), undefined));
print(`signed in as ${values.user}. ${peer ? `talking to ${peer.name}.` : "use /to <user> to pick someone."} /who lists conversations, /quit leaves.`);
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
        rl.setPrompt(`${peer.name}> `);
        print(`talking to ${peer.name}`);
      } catch (e) {
        print((e as Error).message);
      }
      return;
    }
    if (text === "/who") {
      const list = await client.api.msg.listConversations({}, { headers: client.api.headers() });
      for (const c of list.conversations) print(`  ${c.conversationId}  unread ${c.unreadCount}  ${c.lastMessage ? textOf(c.lastMessage).slice(0, 40) : ""}`);
      return;
    }
    if (!peer) return print("pick someone first: /to <user>");
    try {
      const res = await client.sendText({ peerUserId: peer.id }, text);
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

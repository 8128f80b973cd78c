// Checks the contracts themselves: every RPC declares who may call it, only the sign-in RPCs are public,
// and the protovalidate rules on client fields refuse bad input with a message that says what to fix.
import type { DescMessage, DescService, MessageInitShape } from "@bufbuild/protobuf";
import { create, getOption } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { expect } from "chai";
import { AuthAdminService, AuthInternalService, AuthService, RegisterRequestSchema } from "../gen/im/auth/v1/auth_pb.js";
import { ConnectRequestSchema, GatewayService, PushService } from "../gen/im/gateway/v1/gateway_pb.js";
import { CreateGroupRequestSchema, GroupInternalService, GroupService, SetMemberRoleRequestSchema, UpdateGroupRequestSchema } from "../gen/im/group/v1/group_pb.js";
import {
  MessageFlag,
  MsgInternalService,
  MsgService,
  SendMessageRequestSchema,
  SetMessageFlagsRequestSchema,
  SyncMessagesRequestSchema,
} from "../gen/im/msg/v1/msg_pb.js";
import { Access, method as methodRules } from "../gen/im/options/v1/options_pb.js";
import { BatchGetUsersRequestSchema, UpdateProfileRequestSchema, UserService } from "../gen/im/user/v1/user_pb.js";

const services: DescService[] = [
  AuthService,
  AuthInternalService,
  AuthAdminService,
  UserService,
  MsgService,
  MsgInternalService,
  GroupService,
  GroupInternalService,
  GatewayService,
  PushService,
];

const validator = createValidator();

function violations<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): string[] {
  const result = validator.validate(schema, create(schema, init));
  if (result.kind === "error") throw result.error;
  return result.kind === "invalid" ? result.violations.map((v) => v.toString()) : [];
}

describe("contracts", () => {
  it("declare an access level on every RPC", () => {
    for (const service of services) {
      for (const m of service.methods) {
        const access = getOption(m, methodRules).access;
        expect(access, `${service.typeName}.${m.name}`).to.not.equal(Access.UNSPECIFIED);
      }
    }
  });

  it("make only Register, Login and RefreshToken public", () => {
    const open = services.flatMap((s) =>
      s.methods.filter((m) => getOption(m, methodRules).access === Access.PUBLIC).map((m) => `${s.typeName}.${m.name}`),
    );
    expect(open).to.deep.equal([
      "im.auth.v1.AuthService.Register",
      "im.auth.v1.AuthService.Login",
      "im.auth.v1.AuthService.RefreshToken",
    ]);
  });

  it("keep internal and admin RPCs in their own services, apart from what the gateway forwards", () => {
    for (const service of services) {
      const levels = new Set(service.methods.map((m) => getOption(m, methodRules).access));
      const internal = /Internal|Push/.test(service.name);
      const admin = /Admin/.test(service.name);
      if (internal) expect([...levels], service.typeName).to.deep.equal([Access.INTERNAL]);
      else if (admin) expect([...levels], service.typeName).to.deep.equal([Access.ADMIN]);
      else expect(levels.has(Access.INTERNAL) || levels.has(Access.ADMIN), service.typeName).to.equal(false);
    }
  });

  it("accept a well-formed send and name every problem of a bad one", () => {
    expect(
      violations(SendMessageRequestSchema, {
        clientMsgId: "c-1",
        target: { case: "conversationId", value: "s:a:b" },
        content: { kind: { case: "text", value: { text: "hello" } } },
      }),
    ).to.deep.equal([]);
    const bad = violations(SendMessageRequestSchema, {
      clientMsgId: "has spaces",
      content: { kind: { case: "text", value: { text: "x".repeat(16385) } } },
    });
    expect(bad.join("\n")).to.match(/client_msg_id: .*pattern/);
    expect(bad.join("\n")).to.match(/target: exactly one field is required/);
    expect(bad.join("\n")).to.match(/content.text.text: .*16384 bytes/);
  });

  it("bound pages, batches and enums", () => {
    expect(violations(SyncMessagesRequestSchema, { conversationId: "g:1", limit: 101 }).join()).to.match(/limit: .*100/);
    const ids = Array.from({ length: 101 }, (_, i) => `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`);
    expect(violations(BatchGetUsersRequestSchema, { userIds: ids }).join()).to.match(/user_ids: .*no more than 100 item/);
    expect(violations(BatchGetUsersRequestSchema, { userIds: ["alice"] }).join()).to.match(/user_ids\[0\]: .*UUID/);
    expect(violations(SetMemberRoleRequestSchema, { groupId: ids[0], userId: ids[1], role: 1 }).join()).to.match(/role: /);
  });

  it("require a frame in every stream message and validate what it carries", () => {
    expect(violations(ConnectRequestSchema, {}).join()).to.match(/frame: value is required/);
    const bad = violations(ConnectRequestSchema, { frame: { body: { case: "ack", value: { conversationId: "x", seq: 0n } } } });
    expect(bad.join("\n")).to.match(/frame.ack.conversation_id/);
    expect(bad.join("\n")).to.match(/frame.ack.seq/);
  });

  it("refuse weak registration input before it reaches the service", () => {
    const bad = violations(RegisterRequestSchema, { apiKey: "k", username: "-x", password: "short", email: "nope" });
    expect(bad.join("\n")).to.match(/username/);
    expect(bad.join("\n")).to.match(/password: .*8 characters/);
    expect(bad.join("\n")).to.match(/email/);
    expect(bad.join("\n")).to.match(/device: value is required/);
  });

  it("take only https URLs and names without control or bidi-override characters (#18, finding 11)", () => {
    const media = (url: string) =>
      violations(SendMessageRequestSchema, { clientMsgId: "c-1", target: { case: "conversationId", value: "s:a:b" }, content: { kind: { case: "media", value: { url, mimeType: "image/png" } } } });
    expect(media("https://cdn.example.com/a.png")).to.deep.equal([]);
    for (const url of ["javascript:alert(1)", "file:///etc/passwd", "http://cdn.example.com/a.png", "data:text/html,x"]) expect(media(url).join(), url).to.match(/content.media.url/);
    const groupId = "00000000-0000-4000-8000-000000000001";
    expect(violations(CreateGroupRequestSchema, { requestId: "r", name: "Team", avatarUrl: "https://cdn.example.com/t.png" })).to.deep.equal([]);
    expect(violations(CreateGroupRequestSchema, { requestId: "r", name: "Team" }), "no avatar").to.deep.equal([]);
    expect(violations(CreateGroupRequestSchema, { requestId: "r", name: "Team", avatarUrl: "javascript:alert(1)" }).join()).to.match(/avatar_url/);
    expect(violations(UpdateGroupRequestSchema, { groupId, avatarUrl: "" }), "empty removes the avatar").to.deep.equal([]);
    expect(violations(UpdateGroupRequestSchema, { groupId, avatarUrl: "javascript:alert(1)" }).join()).to.match(/avatar_url/);
    expect(violations(UpdateProfileRequestSchema, { avatarUrl: "" })).to.deep.equal([]);
    expect(violations(UpdateProfileRequestSchema, { avatarUrl: "file:///etc/passwd" }).join()).to.match(/avatar_url/);
    for (const name of ["evil\u0000name", "bell\u0007", "admin\u202Egnp.exe", "iso\u2066late", "del\u007F", "c1\u0085"]) {
      expect(violations(UpdateProfileRequestSchema, { displayName: name }).join(), JSON.stringify(name)).to.match(/display_name/);
      expect(violations(RegisterRequestSchema, { apiKey: "k", username: "valid", password: "correct horse 42", displayName: name, device: { deviceId: "d" } }).join(), JSON.stringify(name)).to.match(/display_name/);
      expect(violations(CreateGroupRequestSchema, { requestId: "r", name }).join(), JSON.stringify(name)).to.match(/name/);
      expect(violations(UpdateGroupRequestSchema, { groupId, name }).join(), JSON.stringify(name)).to.match(/name/);
    }
    for (const name of ["Zoë", "مرحبا", "שלום עולם", "李雷", "Anne-Marie O'Neil 🎉"]) {
      expect(violations(UpdateProfileRequestSchema, { displayName: name }), name).to.deep.equal([]);
      expect(violations(CreateGroupRequestSchema, { requestId: "r", name }), name).to.deep.equal([]);
    }
  });

  it("let users set only the starred flag (#18, finding 12)", () => {
    const flags = (add: MessageFlag[], remove: MessageFlag[] = []) => violations(SetMessageFlagsRequestSchema, { conversationId: "s:a:b", seqs: [1n], add, remove });
    expect(flags([MessageFlag.STARRED], [MessageFlag.STARRED])).to.deep.equal([]);
    expect(flags([MessageFlag.READ]).join()).to.match(/add\[0\]/);
    expect(flags([], [MessageFlag.READ]).join()).to.match(/remove\[0\]/);
    expect(flags([MessageFlag.MENTIONED]).join()).to.match(/add\[0\]/);
  });
});

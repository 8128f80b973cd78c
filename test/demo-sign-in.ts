// Signs a demo user in through the API, for tests that then use the token with a client of their own.
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService, Platform } from "../gen/im/auth/v1/auth_pb.js";
import { demo } from "../platform/store/demo-data.js";

/** The access token of a demo user (password demo.password) signed in on a device (a new one by default). */
export async function demoAccessToken(url: string, username: string, deviceId: string = randomUUID()): Promise<string> {
  const res = await createClient(AuthService, createGrpcTransport({ baseUrl: url })).login({
    apiKey: demo.apiKey,
    login: { case: "username", value: username },
    password: demo.password,
    device: { deviceId, platform: Platform.CLI },
  });
  return res.session!.tokens!.accessToken;
}

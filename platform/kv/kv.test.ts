import { expect } from "chai";
import { infraEnv } from "../../test/infra.js";
import { freePort, TestProcess } from "../../test/processes.js";
import { UnavailableError } from "../errors.js";
import { kvContract } from "./kv.contract.js";
import { MemoryKv } from "./memory-kv.js";
import { RedisKv } from "./redis-kv.js";

describe("kv: memory adapter", () => {
  kvContract(async () => new MemoryKv());
});

describe("kv: Redis adapter @infra", () => {
  kvContract(() => RedisKv.connect(infraEnv("IM_REDIS_URL")));

  it("fails to connect with UnavailableError naming Redis", async () => {
    const port = await freePort();
    const err = await RedisKv.connect(`redis://127.0.0.1:${port}`).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(UnavailableError);
    expect((err as UnavailableError).component).to.equal("redis");
  });

  it("turns a lost connection into UnavailableError and reconnects by itself when Redis is back", async function () {
    this.timeout(30_000);
    const port = await freePort();
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    const server = new TestProcess("redis-server", args, port);
    await server.start();
    const kv = await RedisKv.connect(`redis://127.0.0.1:${port}`);
    try {
      await kv.set("k", "v");
      await server.stop("SIGKILL");
      const err = await kv.get("k").catch((e: unknown) => e);
      expect(err).to.be.instanceOf(UnavailableError);
      await server.start();
      let value: string | null | undefined;
      for (let i = 0; i < 100 && value === undefined; i++) {
        value = await kv.get("k").catch(() => undefined);
        if (value === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      // The restarted server is empty (no persistence): the adapter answers again, with the data loss visible.
      expect(value).to.equal(null);
    } finally {
      await kv.close();
      await server.stop();
    }
  });
});

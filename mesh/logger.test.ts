import { Writable } from "node:stream";
import { expect } from "chai";
import { withScope } from "./call-scope.js";
import { createLogger } from "./logger.js";

describe("logger", () => {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    });
    return { lines, logger: createLogger("test", "info", sink) };
  }

  it("stamps every line written inside a call with its request id, and none outside", async () => {
    const { lines, logger } = capture();
    logger.info("outside");
    await withScope({ requestId: "req-7", deadline: undefined, identity: undefined }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      logger.info({ step: 2 }, "inside, after an await");
    });
    expect(lines.map((l) => [l.msg, l.requestId, l.service])).to.deep.equal([
      ["outside", undefined, "test"],
      ["inside, after an await", "req-7", "test"],
    ]);
  });

  it("redacts credentials", () => {
    const { lines, logger } = capture();
    logger.info({ password: "hunter2", headers: { authorization: "Bearer abc" }, user: { token: "t" } }, "login");
    const text = JSON.stringify(lines[0]);
    expect(text).to.not.contain("hunter2");
    expect(text).to.not.contain("Bearer abc");
    expect(text).to.not.contain('"t"');
  });
});

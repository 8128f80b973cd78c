import { expect } from "chai";
import { ConfigError, defaultPorts, loadConfig, redact } from "./config.js";

describe("config", () => {
  it("runs all-in-one with nothing set: in-memory adapters and the default ports", () => {
    const config = loadConfig("all-in-one", ["gateway", "msg"], {});
    expect(config.infra).to.deep.equal({
      etcdEndpoints: undefined,
      mysqlUrl: undefined,
      redisUrl: undefined,
      kafkaBrokers: undefined,
      etcdNamespace: undefined,
    });
    expect(config.ports).to.deep.equal(defaultPorts);
    expect(config.logLevel).to.equal("info");
  });

  it("names the missing variable when a mesh service lacks a dependency", () => {
    const env = { IM_ETCD_ENDPOINTS: "http://127.0.0.1:2379", IM_REDIS_URL: "redis://127.0.0.1:6379", IM_MESH_SECRET: "s".repeat(32) };
    expect(() => loadConfig("mesh", ["gateway"], env)).not.to.throw();
    const err = (() => {
      try {
        loadConfig("mesh", ["msg"], { ...env, IM_MYSQL_URL: "mysql://u:p@127.0.0.1/im_chat" });
      } catch (e) {
        return e;
      }
    })();
    expect(err).to.be.instanceOf(ConfigError);
    expect((err as ConfigError).variable).to.equal("IM_KAFKA_BROKERS");
    expect((err as Error).message).to.match(/^IM_KAFKA_BROKERS: must be set to run the msg service in mesh mode/);
  });

  it("refuses malformed values with the variable's name and an example, never echoing a password", () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ IM_GATEWAY_PORT: "80a" }, /^IM_GATEWAY_PORT: "80a" is not a port/],
      [{ IM_GATEWAY_PORT: "70000" }, /^IM_GATEWAY_PORT: /],
      [{ IM_MYSQL_URL: "postgres://u:hunter2@h/db" }, /^IM_MYSQL_URL: expected a mysql: URL/],
      [{ IM_MYSQL_URL: "not a url" }, /^IM_MYSQL_URL: "not a url" is not a URL/],
      [{ IM_REDIS_URL: "http://127.0.0.1:6379" }, /^IM_REDIS_URL: expected a redis: or rediss: URL/],
      [{ IM_KAFKA_BROKERS: "127.0.0.1" }, /^IM_KAFKA_BROKERS: "127.0.0.1" is not host:port/],
      [{ IM_KAFKA_BROKERS: " , " }, /^IM_KAFKA_BROKERS: is empty/],
      [{ IM_LOG_LEVEL: "loud" }, /^IM_LOG_LEVEL: "loud" is not one of/],
    ];
    for (const [env, message] of cases) {
      expect(() => loadConfig("all-in-one", ["gateway"], env), JSON.stringify(env)).to.throw(ConfigError, message);
    }
    expect(() => loadConfig("all-in-one", [], { IM_MYSQL_URL: "mysql//u:hunter2@h" })).to.throw(ConfigError);
    try {
      loadConfig("all-in-one", [], { IM_MYSQL_URL: "postgres://u:hunter2@h/db" });
    } catch (e) {
      expect((e as Error).message).not.to.contain("hunter2");
    }
  });

  it("reads every setting, lists included", () => {
    const config = loadConfig("mesh", ["msg"], {
      IM_ETCD_ENDPOINTS: "http://127.0.0.1:2379, http://127.0.0.1:22379",
      IM_MYSQL_URL: "mysql://im_service:pw@127.0.0.1:3306/im_chat",
      IM_REDIS_URL: "redis://127.0.0.1:6379/0",
      IM_KAFKA_BROKERS: "127.0.0.1:9092,127.0.0.1:9094",
      IM_MSG_PORT: "0",
      IM_LOG_LEVEL: "debug",
      IM_MESH_SECRET: "m".repeat(40),
      IM_ETCD_NAMESPACE: "/test-1",
    });
    expect(config.secrets.meshSecret).to.equal("m".repeat(40));
    expect(config.infra.etcdNamespace).to.equal("/test-1");
    expect(config.infra.etcdEndpoints).to.deep.equal(["http://127.0.0.1:2379", "http://127.0.0.1:22379"]);
    expect(config.infra.kafkaBrokers).to.deep.equal(["127.0.0.1:9092", "127.0.0.1:9094"]);
    expect(config.ports.msg).to.equal(0);
    expect(config.logLevel).to.equal("debug");
  });

  it("requires the shared secrets in mesh mode, and refuses short ones in any mode", () => {
    const infra = { IM_ETCD_ENDPOINTS: "http://127.0.0.1:2379", IM_REDIS_URL: "redis://127.0.0.1:6379", IM_MYSQL_URL: "mysql://u:p@127.0.0.1/im_chat" };
    expect(() => loadConfig("mesh", ["user"], infra)).to.throw(ConfigError, /^IM_MESH_SECRET: must be set in mesh mode/);
    const withSecret = { ...infra, IM_MESH_SECRET: "x".repeat(32) };
    expect(() => loadConfig("mesh", ["user"], withSecret)).not.to.throw();
    expect(() => loadConfig("mesh", ["auth"], withSecret)).to.throw(ConfigError, /^IM_AUTH_SIGNING_KEYS: .*npm run keygen/);
    expect(() => loadConfig("all-in-one", [], { IM_ADMIN_TOKEN: "short" })).to.throw(ConfigError, /^IM_ADMIN_TOKEN: must be at least 32/);
    try {
      loadConfig("all-in-one", [], { IM_MESH_SECRET: "hunter2" });
    } catch (e) {
      expect((e as Error).message).not.to.contain("hunter2");
    }
  });

  it("redacts passwords in URLs", () => {
    expect(redact("mysql://im_service:secret@127.0.0.1:3306/im_chat")).to.equal("mysql://im_service:***@127.0.0.1:3306/im_chat");
    expect(redact("redis://127.0.0.1:6379")).to.equal("redis://127.0.0.1:6379");
  });

  it("reads the abuse limits (#18): rates as burst/seconds or off, with defaults, and trusted proxies as addresses or CIDR ranges", () => {
    const defaults = loadConfig("all-in-one", [], {}).limits;
    expect(defaults).to.deep.equal({
      sendPerUser: { capacity: 50, refillPerSecond: 5 },
      sendPerApp: { capacity: 2000, refillPerSecond: 2000 },
      registerPerAddress: { capacity: 10, refillPerSecond: 10 / 3600 },
      registerPerApp: { capacity: 100, refillPerSecond: 100 / 60 },
      trustedProxies: [],
    });
    const set = loadConfig("all-in-one", [], { IM_SEND_RATE_USER: "3 / 60", IM_SEND_RATE_APP: "off", IM_TRUSTED_PROXIES: "10.0.0.0/8, 192.0.2.7,fd00::/8" }).limits;
    expect(set.sendPerUser).to.deep.equal({ capacity: 3, refillPerSecond: 0.05 });
    expect(set.sendPerApp).to.equal(undefined);
    expect(set.trustedProxies).to.deep.equal(["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
    for (const [name, value] of [["IM_SEND_RATE_USER", "fast"], ["IM_REGISTER_RATE_APP", "0/10"], ["IM_TRUSTED_PROXIES", "10.0.0.0/33"], ["IM_TRUSTED_PROXIES", "proxy.local"]]) {
      expect(() => loadConfig("all-in-one", [], { [name!]: value }), `${name}=${value}`).to.throw(ConfigError, new RegExp(`^${name}: "`));
    }
  });
});

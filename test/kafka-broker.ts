// A private single-node KRaft broker for tests that kill and restart Kafka, run from the jars infra.sh fetched.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort, TestProcess } from "./processes.js";

const lib = fileURLToPath(new URL("../.run/kafka/lib", import.meta.url));

/** A broker on free ports with its own data folder; start/stop keep the data, dispose removes it. */
export class TestKafkaBroker {
  private process: TestProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async create(): Promise<TestKafkaBroker> {
    if (!existsSync(lib)) throw new Error(`${lib} is missing: run 'make infra-up' first (it fetches the Kafka jars)`);
    const [port, controller] = [await freePort(), await freePort()];
    const dir = await mkdtemp(join(tmpdir(), "im-kafka-"));
    await writeFile(
      join(dir, "server.properties"),
      [
        "process.roles=broker,controller",
        "node.id=1",
        `controller.quorum.voters=1@127.0.0.1:${controller}`,
        `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        `log.dirs=${join(dir, "data")}`,
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
      ].join("\n"),
    );
    await writeFile(join(dir, "log4j.properties"), "log4j.rootLogger=ERROR, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\nlog4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n");
    const broker = new TestKafkaBroker(port, dir);
    await promisify(execFile)("java", [...broker.jvm(), "kafka.tools.StorageTool", "format", "-t", "im-test-cluster-00001A", "-c", join(dir, "server.properties")]);
    return broker;
  }

  private jvm(): string[] {
    return ["-Xmx384m", `-Dlog4j.configuration=file:${join(this.dir, "log4j.properties")}`, "-cp", `${lib}/*`];
  }

  async start(): Promise<void> {
    this.process = new TestProcess("java", [...this.jvm(), "kafka.Kafka", join(this.dir, "server.properties")], this.port, 60_000);
    await this.process.start();
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await this.process?.stop(signal);
  }

  async dispose(): Promise<void> {
    await this.stop("SIGKILL");
    await rm(this.dir, { recursive: true, force: true });
  }
}

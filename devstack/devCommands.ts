/**
 * `devicestream dev add-device NAME`: registers a device in the local IoT Hub emulator started by
 * `npm start` (its service connection string and CA come from `.devstack/env`), writes the device's
 * agent configuration file beside it and prints the device's connection string and the agent
 * command that uses the file. Local development only: it refuses to run without the emulator's
 * settings, and re-running it for a registered device prints the existing identity.
 *
 * It belongs to the local stack, not to the client: the checkout's bin (bin/devicestream.ts) adds it
 * to the client's CLI as an extension, and an installed client has no `dev` commands (docs/cli.md).
 */
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import type { Device } from "azure-iothub";
import { UsageError } from "../client/cli/args";
import type { Settings } from "../client/cli/config";
import type { CliExtension } from "../client/cli/program";

/** Settings `npm start` writes for this command (see devstack/settings.ts). */
export const DEV_SETTINGS = {
  serviceConnectionString: "IOTHUB_CONNECTION_STRING",
  caFile: "IOTHUB_CA_FILE",
  hubHostName: "IOTHUB_HUB_HOSTNAME",
  gateway: "IOTHUB_GATEWAY_HOST",
} as const;

/** IoT Hub's device ID characters; no `/`, so an ID always names a file in the state directory. */
const DEVICE_ID = /^[A-Za-z0-9\-:.+%_#*?!(),=@$']{1,128}$/;

function need(s: Settings, name: string): string {
  const value = s.get(name);
  if (!value) {
    throw new UsageError(
      `${name} is not set: run \`npm start\` in this repository first (it writes .devstack/env); ` +
        "`dev add-device` only talks to the local IoT Hub emulator",
    );
  }
  return value;
}

export async function addDevice(
  deviceId: string,
  s: Settings,
): Promise<{ connectionString: string; created: boolean }> {
  if (!DEVICE_ID.test(deviceId)) {
    throw new UsageError(
      `'${deviceId}' is not an IoT Hub device ID (1-128 letters, digits or - : . + % _ # * ? ! ( ) , = @ $ ')`,
    );
  }
  const serviceCs = need(s, DEV_SETTINGS.serviceConnectionString);
  const caFile = need(s, DEV_SETTINGS.caFile);
  const hubHostName = need(s, DEV_SETTINGS.hubHostName);
  const gateway = need(s, DEV_SETTINGS.gateway);
  let ca: string;
  try {
    ca = readFileSync(caFile, "utf8");
  } catch (err) {
    throw new UsageError(
      `${DEV_SETTINGS.caFile} ${caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  // Loaded here, not at the top: the IoT Hub service SDK is large, and `--help` must not pay for it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createIotHubClients } = require("../shared/iothub") as typeof import("../shared/iothub");
  const { registry } = createIotHubClients({ connectionString: serviceCs, ca });
  if (!registry) throw new Error("no IoT Hub registry client");
  let device: Device;
  let created = true;
  try {
    device = (await registry.create({ deviceId })).responseBody;
  } catch (err) {
    if ((err as { name?: string }).name !== "DeviceAlreadyExistsError") throw err;
    created = false;
    device = (await registry.get(deviceId)).responseBody;
  }
  const key = device.authentication?.symmetricKey?.primaryKey;
  if (!key) throw new Error(`device '${deviceId}' has no symmetric key`);
  return {
    connectionString: `HostName=${hubHostName};DeviceId=${deviceId};SharedAccessKey=${key};GatewayHostName=${gateway}`,
    created,
  };
}

/** `file` as the user would type it here: relative below the current directory, else absolute. */
function fromCwd(cwd: string, file: string): string {
  const shown = relative(cwd, resolve(cwd, file));
  return shown.startsWith("..") || isAbsolute(shown) ? resolve(cwd, file) : shown;
}

/** Quotes for a POSIX shell, only when needed: the printed command is pasted as it is. */
const shellWord = (w: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`);

/**
 * The device's agent configuration (docs/decisions.md §1 rule 7): identity, IoT Hub CA and the one
 * relay it may join, in a 0600 file beside the stack's own, read by `device --config FILE`.
 */
export function writeAgentConfig(
  stateDir: string,
  deviceId: string,
  values: { connectionString: string; caFile: string; relay: { endpoint: string; hub: string } },
): string {
  const file = join(stateDir, `agent-${deviceId}.env`);
  const lines = [
    "# written by devicestream dev add-device; local development values only",
    `IOTHUB_DEVICE_CONNECTION_STRING=${values.connectionString}`,
    `IOTHUB_DEVICE_CA_FILE=${resolve(values.caFile)}`,
    `DEVICESTREAM_RELAY_ENDPOINT=${values.relay.endpoint}`,
    `DEVICESTREAM_RELAY_HUB=${values.relay.hub}`,
    // The emulator's relay is plain ws://; a real Web PubSub never needs this.
    ...(values.relay.endpoint.startsWith("http:") ? ["DEVICESTREAM_ALLOW_INSECURE_RELAY=1"] : []),
  ];
  writeFileSync(file, `${lines.join("\n")}\n`, { mode: 0o600 });
  chmodSync(file, 0o600); // the mode option only applies to a file it creates
  return file;
}

export const registerDevCommands: CliExtension = (program, { settings: s, ...io }) => {
  program
    .command("dev")
    .description("local development helpers (the stack of `npm start`)")
    .command("add-device")
    .description("register a device in the local IoT Hub emulator, write its agent configuration file")
    .argument("<name>", "device ID (case-sensitive)")
    .action(async (name: string) => {
      const stackFile = s.file();
      const { connectionString, created } = await addDevice(name, s);
      if (!stackFile) {
        throw new UsageError(
          "dev add-device writes the agent's configuration beside the stack's own file: " +
            "name it with --config .devstack/env (or run the CLI of the checkout npm start runs in)",
        );
      }
      const file = writeAgentConfig(stackFile.dir, name, {
        connectionString,
        caFile: need(s, DEV_SETTINGS.caFile),
        relay: await io.relay(),
      });
      const path = fromCwd(io.cwd, file);
      // This module runs from the checkout's dist/devstack/: its CLI is dist/bin/ beside it.
      const cli = fromCwd(io.cwd, join(__dirname, "..", "bin", "devicestream.js"));
      io.out(connectionString);
      io.err(
        `${created ? "registered" : "already registered:"} ${name}; its agent configuration: ${path}\n` +
          "Run its agent from this directory:\n" +
          `  node ${shellWord(cli)} device --config ${shellWord(path)} --echo`,
      );
    });
};

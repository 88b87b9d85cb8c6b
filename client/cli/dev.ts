/**
 * `devicestream dev add-device NAME`: registers a device in the local IoT Hub emulator started by
 * `npm start` (its service connection string and CA come from `.devstack/env`) and prints the
 * device's connection string. Local development only: it refuses to run without the emulator's
 * settings, and re-running it for a registered device prints the existing identity.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import type { Device } from "azure-iothub";
import { createIotHubClients } from "../../shared/iothub";
import { UsageError } from "./args";
import type { Settings } from "./config";

/** Settings `npm start` writes for this command (see devstack/settings.ts). */
export const DEV_SETTINGS = {
  serviceConnectionString: "IOTHUB_CONNECTION_STRING",
  caFile: "IOTHUB_CA_FILE",
  hubHostName: "IOTHUB_HUB_HOSTNAME",
  gateway: "IOTHUB_GATEWAY_HOST",
} as const;

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

export function registerDevCommands(
  program: Command,
  s: Settings,
  out: (text: string) => void,
  err: (text: string) => void,
): void {
  program
    .command("dev")
    .description("local development helpers (the stack of `npm start`)")
    .command("add-device")
    .description("register a device in the local IoT Hub emulator and print its connection string")
    .argument("<name>", "device ID (case-sensitive)")
    .action(async (name: string) => {
      const { connectionString, created } = await addDevice(name, s);
      out(connectionString);
      err(
        `${created ? "registered" : "already registered:"} ${name}. Run its agent from this repository:\n` +
          `  node dist/bin/devicestream.js device --connection-string "${connectionString}" ` +
          `--ca-file ${s.get(DEV_SETTINGS.caFile)} --echo`,
      );
    });
}

/** Builds and opens the agent's IoT Hub client from a device or module connection string. */
import { readFileSync } from "node:fs";
import { Client, type DeviceClientOptions, ModuleClient } from "azure-iot-device";
import { Mqtt, MqttWs } from "azure-iot-device-mqtt";
import { type MqttTransport, UsageError } from "./args";
import { proxyAgentFor } from "../sdk/relay";

export interface DeviceClientSettings {
  connectionString: string;
  transport: MqttTransport;
  caFile?: string;
  keepaliveSeconds?: number;
  env: NodeJS.ProcessEnv;
}

export type AgentClient = Client | ModuleClient;

export function identityOf(connectionString: string): {
  deviceId: string;
  moduleId?: string;
  hostName: string;
} {
  const fields = new Map(
    connectionString
      .split(";")
      .filter((p) => p.includes("="))
      .map((p) => [p.slice(0, p.indexOf("=")).trim().toLowerCase(), p.slice(p.indexOf("=") + 1).trim()]),
  );
  const deviceId = fields.get("deviceid");
  const hostName = fields.get("hostname");
  if (
    !deviceId ||
    !hostName ||
    !(fields.get("sharedaccesskey") || fields.get("x509") || fields.get("sharedaccesssignature"))
  ) {
    throw new UsageError(
      "the device connection string needs HostName, DeviceId and SharedAccessKey " +
        "(from `az iot hub device-identity connection-string show`, or the emulator's createDevice)",
    );
  }
  const moduleId = fields.get("moduleid");
  return { deviceId, hostName, ...(moduleId ? { moduleId } : {}) };
}

export async function openDeviceClient(s: DeviceClientSettings): Promise<AgentClient> {
  const identity = identityOf(s.connectionString);
  const Transport = s.transport === "mqtt-ws" ? MqttWs : Mqtt;
  const client =
    identity.moduleId !== undefined
      ? ModuleClient.fromConnectionString(s.connectionString, Transport)
      : Client.fromConnectionString(s.connectionString, Transport);
  const options: DeviceClientOptions = {};
  if (s.caFile) {
    try {
      options.ca = readFileSync(s.caFile, "utf8");
    } catch (err) {
      throw new UsageError(`--ca-file ${s.caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  if (s.keepaliveSeconds !== undefined) options.keepalive = s.keepaliveSeconds;
  if (s.transport === "mqtt-ws") {
    const agent = proxyAgentFor(new URL(`https://${identity.hostName}`), s.env);
    if (agent) options.mqtt = { webSocketAgent: agent as never };
  }
  await client.setOptions(options);
  await client.open();
  return client;
}

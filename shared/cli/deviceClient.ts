/** Builds and opens the agent's IoT Hub client from a device or module connection string. */
import { readFileSync } from "node:fs";
import { ConnectionString } from "azure-iot-common";
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
  let parsed: ConnectionString | undefined;
  try {
    parsed = ConnectionString.parse(connectionString, ["HostName", "DeviceId"]);
  } catch {
    parsed = undefined; // the message below says what a valid one holds
  }
  const hostName = parsed?.HostName;
  const deviceId = parsed?.DeviceId;
  const moduleId = parsed?.ModuleId;
  const credential = parsed?.SharedAccessKey ?? parsed?.SharedAccessSignature ?? parsed?.x509;
  if (!hostName || !deviceId || !credential) {
    throw new UsageError(
      "the device connection string needs HostName, DeviceId and SharedAccessKey " +
        "(from `az iot hub device-identity connection-string show`, or the emulator's createDevice)",
    );
  }
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

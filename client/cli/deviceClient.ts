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

export interface DeviceIdentity {
  deviceId: string;
  moduleId?: string;
  hostName: string;
  /** What the SDK dials instead of HostName (a local gateway or the emulator). */
  gatewayHostName?: string;
}

export function identityOf(connectionString: string): DeviceIdentity {
  let parsed: ConnectionString | undefined;
  try {
    parsed = ConnectionString.parse(connectionString, ["HostName", "DeviceId"]);
  } catch {
    parsed = undefined; // the message below says what a valid one holds
  }
  const hostName = parsed?.HostName;
  const deviceId = parsed?.DeviceId;
  const moduleId = parsed?.ModuleId;
  const gatewayHostName = parsed?.GatewayHostName;
  const credential = parsed?.SharedAccessKey ?? parsed?.SharedAccessSignature ?? parsed?.x509;
  if (!hostName || !deviceId || !credential) {
    throw new UsageError(
      "the device connection string needs HostName, DeviceId and SharedAccessKey " +
        "(from `az iot hub device-identity connection-string show`, or the emulator's createDevice)",
    );
  }
  return {
    deviceId,
    hostName,
    ...(moduleId ? { moduleId } : {}),
    ...(gatewayHostName ? { gatewayHostName } : {}),
  };
}

/**
 * The host MqttWs dials: it always builds `wss://<GatewayHostName or HostName>:443/$iothub/websocket`,
 * so a host that already carries a port (the emulator's MQTT/TLS GatewayHostName) cannot work.
 */
export function webSocketHost(identity: DeviceIdentity): string {
  const host = identity.gatewayHostName ?? identity.hostName;
  if (/^(?:\[[^\]]*\]|[^:]*):\d+$/.test(host)) {
    throw new UsageError(
      `--transport mqtt-ws always dials port 443 of ${identity.gatewayHostName ? "GatewayHostName" : "HostName"}, ` +
        `which must not carry a port (got ${host}); for the emulator see docs/iothub-emulator.md`,
    );
  }
  return host;
}

export async function openDeviceClient(s: DeviceClientSettings): Promise<AgentClient> {
  const identity = identityOf(s.connectionString);
  const wsHost = s.transport === "mqtt-ws" ? webSocketHost(identity) : undefined;
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
  if (wsHost !== undefined) {
    // NO_PROXY is matched against the host actually dialled.
    const agent = proxyAgentFor(new URL(`https://${wsHost}`), s.env);
    if (agent) options.mqtt = { webSocketAgent: agent as never };
  }
  await client.setOptions(options);
  try {
    await client.open();
  } catch (err) {
    // The SDK's error names the cause (UnauthorizedError: exit 3; NotConnectedError: exit 5) but
    // not whose it is.
    if (err instanceof Error) err.message = `iot hub: ${err.message}`;
    throw err;
  }
  return client;
}

/**
 * The local stack's settings, in one place. The SAS key below is a documented development
 * default: it protects nothing but a stack on your own loopback interface, and Azure mode refuses
 * connection strings altogether, so it can never reach production.
 */
import type { IotHubEmulator } from "../emulators/iothub";

export const DEV_HUB = "streams";
export const DEV_SAS_POLICY = "service";
/** base64 of "device-streams local development key!" (36 bytes); development only. */
export const DEV_SAS_KEY = Buffer.from("device-streams local development key!").toString("base64");
/** The `sr` that local SAS tokens carry: the host name of the control plane's URL. */
export const DEV_SAS_RESOURCE = "localhost";

/** What the control plane runs with locally (connection strings: local mode). */
export function localSettings(
  tablesConnectionString: string,
  iotHub: IotHubEmulator,
): Record<string, string> {
  return {
    DEPLOYMENT_MODE: "local",
    TABLES_CONNECTION_STRING: tablesConnectionString,
    WEBPUBSUB_HUB: DEV_HUB,
    IOTHUB_CONNECTION_STRING: iotHub.serviceConnectionString,
    IOTHUB_CA_FILE: iotHub.caPath,
    SERVICE_SAS_RESOURCE: DEV_SAS_RESOURCE,
    SERVICE_SAS_POLICIES: JSON.stringify([
      { name: DEV_SAS_POLICY, primaryKey: DEV_SAS_KEY, devices: ["*", "*/*"], streams: ["*"] },
    ]),
  };
}

/**
 * What the service side of the CLI needs; written to `.devstack/env`. Service-side settings only
 * (docs/decisions.md §1 rule 4): each device's agent gets its own file from `dev add-device`.
 */
export function clientSettings(functionsPort: number, iotHub: IotHubEmulator): Record<string, string> {
  return {
    DEVICESTREAM_CONNECTION_STRING: `Endpoint=http://${DEV_SAS_RESOURCE}:${functionsPort};SharedAccessKeyName=${DEV_SAS_POLICY};SharedAccessKey=${DEV_SAS_KEY}`,
    // For `devicestream dev add-device`: the emulator's registry, and what a device dials.
    IOTHUB_CONNECTION_STRING: iotHub.serviceConnectionString,
    IOTHUB_CA_FILE: iotHub.caPath,
    IOTHUB_HUB_HOSTNAME: iotHub.hubHostName,
    IOTHUB_GATEWAY_HOST: `${dialable(iotHub)}:${iotHub.mqttPort}`,
  };
}

/** The host the device SDK dials: the emulator's service HostName without its HTTPS port. */
function dialable(iotHub: IotHubEmulator): string {
  return /^HostName=(.+):\d+;/.exec(iotHub.serviceConnectionString)?.[1] ?? "127.0.0.1";
}

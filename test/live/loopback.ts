/**
 * A LiveConfig for the in-process stack: the live target's code (registry-created identities with
 * hub-generated keys, connection strings built from them, SAS to the control plane, cleanup) against
 * the emulators. Only what the emulators need differs, and none of it can come from the environment:
 * the IoT Hub registry is reached with the emulator's development policy (it refuses Entra tokens),
 * devices dial the emulator's MQTT port as a gateway and trust its CA, and the relay is ws://.
 */
import type { Stack } from "../sdk/stack";
import type { LiveConfig } from "./config";

export function loopbackConfig(stack: Stack): LiveConfig {
  const { hub } = stack;
  return {
    controlPlane: { connectionString: stack.connectionString },
    iotHub: { connectionString: hub.serviceConnectionString, ca: hub.caPem },
    devices: { hostName: hub.hubHostName, gatewayHostName: `127.0.0.1:${hub.mqttPort}`, caFile: hub.caPath },
    relay: { endpoint: stack.relayEndpoint, hub: stack.relayHub, allowInsecure: true },
  };
}

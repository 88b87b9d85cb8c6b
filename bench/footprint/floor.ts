/**
 * The agent's memory floors, forked by bench/suites/footprint.ts with the probe preloaded:
 *   `bare`:       Node with nothing loaded, idle;
 *   `device-sdk`: Node with azure-iot-device and azure-iot-device-mqtt loaded and a client connected
 *                 (FLOOR_CONNECTION_STRING, FLOOR_CA_FILE), idle: what any agent built on the SDK holds.
 * Imports nothing else, so the floor carries no bench code. Sends `{ type: "ready" }` when idle.
 */
import { readFileSync } from "node:fs";

async function main(kind: string | undefined): Promise<void> {
  if (kind === "device-sdk") {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const { Client } = require("azure-iot-device") as typeof import("azure-iot-device");
    const { Mqtt } = require("azure-iot-device-mqtt") as typeof import("azure-iot-device-mqtt");
    /* eslint-enable @typescript-eslint/no-require-imports */
    const client = Client.fromConnectionString(process.env.FLOOR_CONNECTION_STRING ?? "", Mqtt);
    client.on("error", () => undefined);
    await client.setOptions({ ca: readFileSync(process.env.FLOOR_CA_FILE ?? "", "utf8") });
    await client.open();
  } else if (kind !== "bare") {
    throw new Error(`floor: unknown kind ${kind}`);
  }
  // Idle until the bench kills it; the probe's IPC channel is unref'd, so hold the loop here.
  setInterval(() => undefined, 1 << 30);
  process.send?.({ type: "ready" });
}

main(process.argv[2]).catch((err: unknown) => {
  process.stderr.write(`floor: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

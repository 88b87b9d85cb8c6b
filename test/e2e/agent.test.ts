/**
 * The device agent as a real process when IoT Hub goes away for good: the device SDK gives up on a
 * connection it does not retry (a refused identity, some resets), and then holds nothing open, so
 * without its own handling the agent ended with exit code 0 while serving nothing.
 */
import { EXIT } from "../../shared/cli/exitCodes";
import { type IotHubEmulator, startIotHubEmulator } from "../../emulators/iothub";
import { withDeadline } from "../helpers/events";
import { cli, ensureBuilt, killAll } from "./support";

jest.setTimeout(120_000);

let hub: IotHubEmulator | undefined;

beforeAll(async () => {
  await ensureBuilt();
  hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0 });
}, 300_000);

afterAll(async () => {
  await killAll();
  await hub?.close();
});

it("IoT Hub refusing the agent for good (its identity deleted): it stops with exit code 5 by itself, nothing left open", async () => {
  const cs = await hub!.createDevice("E2E-Hub-Lost-Dev");
  const agent = cli(
    [
      "device",
      "--connection-string",
      cs,
      "--ca-file",
      hub!.caPath,
      "--echo",
      "--relay-allow-host",
      "127.0.0.1:1",
      "--verbose",
    ],
    { IOTHUB_DEVICE_CONNECTION_STRING: "" },
  );
  await agent.waitFor(/serving echo/, "the agent");
  // The hub comes back without the device, as after `az iot hub device-identity delete`: the SDK
  // reconnects, is refused as unauthorized, which it never retries, and gives up. (Only closing the
  // hub is not deterministic: whether the SDK retries depends on how the socket happened to end.)
  const { mqttPort } = hub!;
  await hub!.close();
  hub = await startIotHubEmulator({ mqttPort, httpsPort: 0 });
  const exit = await withDeadline(agent.exit, 60_000, "the agent to stop").catch((e: Error) => {
    throw new Error(`${e.message}; stderr: ${agent.stderr()}`);
  });
  expect({ ...exit, stderr: agent.stderr() }).toMatchObject({ code: EXIT.deviceUnavailable, signal: null });
  expect(agent.stderr()).toMatch(/iot hub: disconnected \(.+\) and the SDK gave up reconnecting; stopping/);
  expect(agent.stderr()).toMatch(/^devicestream: debug: nothing left open$/m);
});

/**
 * The listener's method registration survives an IoT Hub reconnect: the emulator restarts on the
 * same ports and state, the device SDK reconnects by its retry policy and re-subscribes the method.
 */
import { randomBytes } from "node:crypto";
import { Recorder, withDeadline } from "../helpers/events";
import { echo, roundTrip, sha256 } from "./helpers";
import { useStack } from "./stack";

const stack = useStack();

it("streams open again after the device's IoT Hub connection dropped and came back", async () => {
  const s = stack();
  const client = await s.device("Reconnect-Dev", { retry: true });
  s.listen(client, { onRequest: () => ({ accept: true }) }).on("stream", (st) => st.on("channel", echo));
  const before = await s.client().openStream("Reconnect-Dev", "echo");
  await before.close();

  const connects = new Recorder<unknown>();
  client.on("connect", connects.push);
  await s.restartHub();
  await connects.waitFor((c) => c.length >= 1, "device reconnected", 30_000);

  // The SDK re-subscribes the method after it reconnects, asynchronously; a call racing that is
  // answered DeviceNotOnline. Each retry is a full round trip through the control plane, bounded.
  const stream = await withDeadline(
    (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await s.client().openStream("Reconnect-Dev", "echo");
        } catch (err) {
          if ((err as { code?: string }).code !== "DeviceNotOnline" || attempt === 20) throw err;
        }
      }
    })(),
    30_000,
    "a stream after the reconnect",
  );
  const payload = randomBytes(50_000);
  expect(sha256(await roundTrip(await stream.openChannel(), payload, 4099))).toBe(sha256(payload));
  await stream.close();
}, 60_000);

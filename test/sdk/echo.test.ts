import { createHash, randomBytes } from "node:crypto";
import type { Duplex } from "node:stream";
import { withDeadline } from "../helpers/events";
import { useStack } from "./stack";

const stack = useStack();

/** Echoes every channel of every accepted stream, respecting half-close. */
function echo(channel: Duplex): void {
  channel.pipe(channel);
  channel.on("error", () => undefined);
}

async function roundTrip(channel: Duplex, payload: Buffer, chunk: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  channel.on("data", (b: Buffer) => parts.push(b));
  const ended = new Promise<void>((resolve, reject) => {
    channel.once("end", resolve);
    channel.once("error", reject);
  });
  for (let off = 0; off < payload.length; off += chunk) {
    if (!channel.write(payload.subarray(off, off + chunk))) {
      await new Promise((resolve) => channel.once("drain", resolve));
    }
  }
  channel.end();
  await ended;
  return Buffer.concat(parts);
}

describe("service and device SDKs end to end", () => {
  it("echo: a stream opens, data round-trips byte-identical, close reports Normal", async () => {
    const s = stack();
    const device = await s.device("Echo-Dev.1");
    const requests: unknown[] = [];
    const listener = s.listen(device, {
      onRequest: (req) => {
        requests.push(req);
        return { accept: true, data: { hello: "from device" } };
      },
    });
    listener.on("stream", (stream) => stream.on("channel", echo));

    const client = s.client();
    const stream = await client.openStream("Echo-Dev.1", "echo", { data: { who: "test" } });
    expect(stream.deviceResponse).toEqual({ hello: "from device" });
    expect(requests).toEqual([{ streamId: stream.streamId, name: "echo", data: { who: "test" } }]);

    const channel = await stream.openChannel("t1");
    const payload = randomBytes(300_000);
    const back = await withDeadline(roundTrip(channel, payload, 7919), 15_000, "echo");
    expect(createHash("sha256").update(back).digest("hex")).toBe(
      createHash("sha256").update(payload).digest("hex"),
    );

    const info = await stream.close();
    expect(info.reason).toBe("Normal");
    expect(info.stats.bytesSent).toBe(payload.length);
    const shown = await client.getStream("Echo-Dev.1", stream.streamId);
    expect(shown.streamId).toBe(stream.streamId);
  });
});

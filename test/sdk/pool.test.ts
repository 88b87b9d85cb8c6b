/**
 * Channels beyond a stream's capacity: openChannel waits for a slot on a full stream, and a
 * ChannelPool opens another stream only when that wait drags on, and says once when the device's
 * whole capacity is in use. These tests are about the channel limit, so they set it low.
 */
import type { Duplex } from "node:stream";
import { ChannelPool } from "../../client/sdk/service";
import { Recorder, withDeadline } from "../helpers/events";
import { echo } from "./helpers";
import { useTarget } from "./target";

const stack = useTarget();

async function echoDevice(deviceId: string, limits: { maxChannelsPerStream: number; maxStreams?: number }) {
  const s = stack();
  const client = await s.device(deviceId);
  const listener = s.listen(client, { onRequest: () => ({ accept: true }), ...limits });
  listener.on("stream", (stream) => stream.on("channel", echo));
  return listener;
}

function exchange(channel: Duplex, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    channel.setEncoding("utf8");
    channel.on("data", (t: string) => (got += t));
    channel.once("end", () => resolve(got));
    channel.once("error", reject);
    channel.end(text);
  });
}

describe("a full stream", () => {
  it("openChannel waits for a channel to finish instead of failing, first come first served", async () => {
    const s = stack();
    const deviceId = s.deviceId("Full-Dev");
    await echoDevice(deviceId, { maxChannelsPerStream: 2 });
    const stream = await s.client().openStream(deviceId, "echo");
    const held = [await stream.openChannel("a"), await stream.openChannel("b")];
    const order: string[] = [];
    const third = stream.openChannel("c").then((c) => (order.push("c"), c));
    const fourth = stream.openChannel("d").then((c) => (order.push("d"), c));
    expect(stream.openChannelCount).toBe(2);
    await exchange(held[0]!, "free one");
    const c = await withDeadline(third, 10_000, "the third channel");
    expect(order).toEqual(["c"]);
    await exchange(held[1]!, "free another");
    const d = await withDeadline(fourth, 10_000, "the fourth channel");
    expect(order).toEqual(["c", "d"]);
    expect(await exchange(c, "third")).toBe("third");
    expect(await exchange(d, "fourth")).toBe("fourth");
    await stream.close();
  });

  it("a bounded wait ends with ChannelLimit, and a closing stream fails its waiters", async () => {
    const s = stack();
    const deviceId = s.deviceId("Full-Dev2");
    await echoDevice(deviceId, { maxChannelsPerStream: 1 });
    const stream = await s.client().openStream(deviceId, "echo");
    await stream.openChannel("held");
    await expect(stream.openChannel("late", { waitInMs: 200 })).rejects.toMatchObject({
      code: "ChannelLimit",
    });
    const waiting = expect(stream.openChannel("waiting")).rejects.toThrow(/stream closed/);
    await stream.close();
    await waiting;
  });
});

describe("ChannelPool", () => {
  it("serves 3x a stream's channels at once over a second stream, and says so once at capacity", async () => {
    const s = stack();
    const deviceId = s.deviceId("Pool-Dev");
    // The device takes 2 streams of 4 channels: 8 channels in all for 12 concurrent requests.
    await echoDevice(deviceId, { maxChannelsPerStream: 4, maxStreams: 2 });
    const pool = new ChannelPool(s.client(), { deviceId, name: "echo", overflowAfterInMs: 100 });
    const saturated = new Recorder<string>();
    pool.on("saturated", saturated.push);
    const channels = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.openChannel(`c${i}`)));
    expect(pool.openStreams.map((st) => st.openChannelCount)).toEqual([4, 4]);
    // Four more must wait: the device refuses a third stream (its maxStreams), so the pool says so.
    const later = Array.from({ length: 4 }, (_, i) => pool.openChannel(`later${i}`));
    await saturated.waitFor((items) => items.length === 1, "the capacity message");
    expect(saturated.items[0]).toMatch(/all 8 channels on 2 stream\(s\) are in use/);
    const replies = await Promise.all(channels.map((c, i) => exchange(c, `first ${i}`)));
    expect(replies).toEqual(channels.map((_, i) => `first ${i}`));
    const rest = await withDeadline(Promise.all(later), 15_000, "the queued channels");
    expect(await Promise.all(rest.map((c, i) => exchange(c, `later ${i}`)))).toEqual(
      rest.map((_, i) => `later ${i}`),
    );
    expect(pool.openStreams).toHaveLength(2);
    expect(saturated.items).toHaveLength(1);
    await pool.close();
  });

  it("opens no second stream while the first has room", async () => {
    const s = stack();
    const deviceId = s.deviceId("Pool-Dev2");
    await echoDevice(deviceId, { maxChannelsPerStream: 4 });
    const pool = new ChannelPool(s.client(), { deviceId, name: "echo" });
    for (let i = 0; i < 10; i++) expect(await exchange(await pool.openChannel(), `n${i}`)).toBe(`n${i}`);
    expect(pool.openStreams).toHaveLength(1);
    await pool.close();
  });

  it("the first stream's failure is the caller's error", async () => {
    const s = stack();
    const pool = new ChannelPool(s.client(), { deviceId: s.deviceId("Pool-Nobody"), name: "echo" });
    await expect(pool.openChannel()).rejects.toMatchObject({
      code: "DeviceNotFound",
    });
    await pool.close();
  });
});

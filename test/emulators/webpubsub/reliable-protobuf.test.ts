import {
  decodeDownstream,
  encodeUpstream,
  PROTOBUF_RELIABLE_SUBPROTOCOL,
  PROTOBUF_SUBPROTOCOL,
} from "../../../client/webpubsub";
import type { WebPubSubEmulator } from "../../../emulators/webpubsub";
import { rawClient, serviceClient, startEmulator, type RawClient } from "./helpers";

let emulator: WebPubSubEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.close();
});

async function client(group: string, protocol: string, url?: string) {
  const target =
    url ??
    (
      await serviceClient(emulator, "rp").getClientAccessToken({
        roles: [`webpubsub.sendToGroup.${group}`],
        groups: [group],
      })
    ).url;
  const c = await rawClient(target, [protocol]);
  const connected = decodeDownstream((await c.frames.wait()).data);
  if (connected.type !== "connected") throw new Error("expected connected");
  return { ...c, id: connected.connectionId, token: connected.reconnectionToken, url: target };
}

const sequenceIds = (c: RawClient): number[] =>
  c.frames.items.flatMap((f) => {
    const m = decodeDownstream(f.data);
    return m.type === "message" && m.sequenceId !== undefined ? [m.sequenceId] : [];
  });

describe("protobuf.reliable recovery", () => {
  it("resends more than the outbound queue holds, paced, without SlowClient", async () => {
    const receiver = await client("big", PROTOBUF_RELIABLE_SUBPROTOCOL);
    expect(receiver.token).toEqual(expect.any(String));
    const sender = await client("big", PROTOBUF_SUBPROTOCOL);
    let lost = false;
    emulator.lifecycle.on("disconnected", (e) => {
      if (e.connectionId === receiver.id) lost = true;
    });
    receiver.ws.terminate();
    await receiver.closed;
    // 160 x 64 KiB = 10 MiB buffered while detached: over the 4 MiB queue, under the 16 MB buffer.
    const chunk = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 160; i++) {
      sender.ws.send(
        encodeUpstream({
          type: "sendToGroup",
          group: "big",
          noEcho: true,
          ackId: i + 1,
          data: { kind: "binary", bytes: chunk },
        }),
      );
    }
    await sender.frames.waitCount(160, (f) => decodeDownstream(f.data).type === "ack");
    const resumed = await rawClient(
      `${receiver.url}&awps_connection_id=${receiver.id}&awps_reconnection_token=${encodeURIComponent(receiver.token!)}`,
      [PROTOBUF_RELIABLE_SUBPROTOCOL],
    );
    await Promise.race([
      resumed.frames.waitCount(160, (f) => decodeDownstream(f.data).type === "message"),
      resumed.closed.then((c) => Promise.reject(new Error(`receiver closed: ${c.code} ${c.reason}`))),
    ]);
    expect(sequenceIds(resumed)).toEqual(Array.from({ length: 160 }, (_, i) => i + 1));
    expect(lost).toBe(false);
    resumed.ws.close();
    sender.ws.close();
  });

  it("lets a recovering socket take over from one the server still thinks is alive, and acks trim the buffer", async () => {
    const receiver = await client("take", PROTOBUF_RELIABLE_SUBPROTOCOL);
    const sender = await client("take", PROTOBUF_SUBPROTOCOL);
    const send = (text: string) =>
      sender.ws.send(
        encodeUpstream({ type: "sendToGroup", group: "take", noEcho: true, data: { kind: "text", text } }),
      );
    send("one");
    send("two");
    await receiver.frames.waitCount(2, (f) => decodeDownstream(f.data).type === "message");
    receiver.ws.send(encodeUpstream({ type: "sequenceAck", sequenceId: 1 }));
    // A ping round trip orders the ack before the recovery on the server.
    receiver.ws.send(encodeUpstream({ type: "ping" }));
    await receiver.frames.wait((f) => decodeDownstream(f.data).type === "pong");
    const resumed = await rawClient(
      `${receiver.url}&awps_connection_id=${receiver.id}&awps_reconnection_token=${encodeURIComponent(receiver.token!)}`,
      [PROTOBUF_RELIABLE_SUBPROTOCOL],
    );
    await receiver.closed;
    send("three");
    await resumed.frames.waitCount(2, (f) => decodeDownstream(f.data).type === "message");
    expect(sequenceIds(resumed)).toEqual([2, 3]);
    resumed.ws.close();
    sender.ws.close();
  });
});

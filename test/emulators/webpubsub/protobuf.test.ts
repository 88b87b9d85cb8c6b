import { once } from "node:events";
import { Socket } from "node:net";
import WebSocket from "ws";
import {
  decodeDownstream,
  encodeUpstream,
  PROTOBUF_SUBPROTOCOL,
  type DownstreamMessage,
} from "../../../client/webpubsub";
import type { WebPubSubEmulator } from "../../../emulators/webpubsub";
import { rawClient, serviceClient, startEmulator, type RawClient } from "./helpers";

const HUB = "tunnel";
let emulator: WebPubSubEmulator;

beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.close();
});

async function tunnelClient(
  group: string,
  userId: string,
  roles = [`webpubsub.sendToGroup.${group}`],
): Promise<RawClient & { id: string }> {
  const { baseUrl, token } = await serviceClient(emulator, HUB).getClientAccessToken({
    userId,
    roles,
    groups: [group],
    expirationTimeInMinutes: 5,
  });
  // The tunnel puts the token in the Authorization header rather than the URL.
  const client = await rawClient(baseUrl, [PROTOBUF_SUBPROTOCOL], { Authorization: `Bearer ${token}` });
  expect(client.ws.protocol).toBe(PROTOBUF_SUBPROTOCOL);
  const connected = decodeDownstream((await client.frames.wait()).data);
  if (connected.type !== "connected") throw new Error(`expected connected, got ${connected.type}`);
  expect(connected.userId).toBe(userId);
  expect(connected.reconnectionToken).toBeUndefined();
  return { ...client, id: connected.connectionId };
}

const decoded = (c: RawClient): DownstreamMessage[] => c.frames.items.map((f) => decodeDownstream(f.data));
const waitDecoded = async (
  c: RawClient,
  pred: (m: DownstreamMessage) => boolean,
): Promise<DownstreamMessage> =>
  decodeDownstream((await c.frames.wait((f) => pred(decodeDownstream(f.data)))).data);

describe("protobuf subprotocol", () => {
  it("relays binary sendToGroup with noEcho between two auto-joined members, in order", async () => {
    const a = await tunnelClient("s1", "device");
    const b = await tunnelClient("s1", "service");
    const payloads = [Buffer.from("first"), Buffer.alloc(64 * 1024, 5), Buffer.from([0, 255])];
    for (const [i, bytes] of payloads.entries()) {
      a.ws.send(
        encodeUpstream({
          type: "sendToGroup",
          group: "s1",
          noEcho: true,
          ackId: i + 1,
          data: { kind: "binary", bytes },
        }),
      );
    }
    const acks = await a.frames.waitCount(3, (f) => decodeDownstream(f.data).type === "ack");
    expect(acks.map((f) => decodeDownstream(f.data))).toEqual(
      [1, 2, 3].map((ackId) => ({ type: "ack", ackId, success: true })),
    );
    const got = await b.frames.waitCount(3, (f) => decodeDownstream(f.data).type === "message");
    expect(got.map((f) => decodeDownstream(f.data))).toEqual(
      payloads.map((bytes) => ({
        type: "message",
        from: "group",
        group: "s1",
        // Decoded payloads are Buffer views into the frame; compare as Buffers.
        data: { kind: "binary", bytes: Buffer.from(bytes) },
      })),
    );
    // noEcho: the sender saw only its connected message and acks.
    expect(decoded(a).filter((m) => m.type === "message")).toEqual([]);
    a.ws.close();
    b.ws.close();
  });

  it("writes the messages of one tick to a member in one socket write, in order", async () => {
    const a = await tunnelClient("s-cork", "device");
    const b = await tunnelClient("s-cork", "service");
    // Every socket write the emulator makes (its sockets are the ones whose local port is its own).
    const writeGeneric = jest.spyOn(
      Socket.prototype as unknown as { _writeGeneric: () => void },
      "_writeGeneric",
    );
    const emulatorWrites = (): number =>
      writeGeneric.mock.contexts.filter((s) => (s as Socket).localPort === emulator.port).length;
    const count = 20;
    // Sent in one tick of this process, they reach the emulator in one read: one tick there too.
    for (let i = 0; i < count; i++) {
      a.ws.send(
        encodeUpstream({
          type: "sendToGroup",
          group: "s-cork",
          noEcho: true,
          data: { kind: "binary", bytes: Buffer.from([i]) },
        }),
      );
    }
    const got = await b.frames.waitCount(count, (f) => decodeDownstream(f.data).type === "message");
    const writes = emulatorWrites();
    writeGeneric.mockRestore();
    expect(got.map((f) => decodeDownstream(f.data))).toEqual(
      Array.from({ length: count }, (_, i) => ({
        type: "message",
        from: "group",
        group: "s-cork",
        data: { kind: "binary", bytes: Buffer.from([i]) },
      })),
    );
    // Uncorked, each message is its own write: 20. One read of the
    // sender's burst may split in two at most on loopback, hence not exactly 1.
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThan(count / 4);
    a.ws.close();
    b.ws.close();
  });

  it("sends each binary group message as one WebSocket frame, not as fragments", async () => {
    const a = await tunnelClient("s1f", "device");
    const b = await tunnelClient("s1f", "service");
    // Read the frame headers off b's socket: byte 0 is FIN | opcode (0 = continuation).
    const heads: Array<{ fin: boolean; opcode: number; length: number }> = [];
    let pending = Buffer.alloc(0);
    (b.ws as unknown as { _socket: Socket })._socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (pending.length < 2) return;
        const short = pending[1]! & 0x7f;
        const headerLength = short === 126 ? 4 : short === 127 ? 10 : 2;
        if (pending.length < headerLength) return;
        const length =
          short === 126
            ? pending.readUInt16BE(2)
            : short === 127
              ? Number(pending.readBigUInt64BE(2))
              : short;
        if (pending.length < headerLength + length) return;
        heads.push({ fin: (pending[0]! & 0x80) !== 0, opcode: pending[0]! & 0x0f, length });
        pending = pending.subarray(headerLength + length);
      }
    });
    const payload = Buffer.alloc(256 * 1024, 7);
    a.ws.send(
      encodeUpstream({
        type: "sendToGroup",
        group: "s1f",
        noEcho: true,
        data: { kind: "binary", bytes: payload },
      }),
    );
    const got = decodeDownstream(
      (await b.frames.wait((f) => decodeDownstream(f.data).type === "message")).data,
    );
    expect(got).toMatchObject({ type: "message", data: { kind: "binary", bytes: payload } });
    expect(heads).toEqual([{ fin: true, opcode: 2, length: expect.any(Number) }]);
    expect(heads[0]!.length).toBeGreaterThan(payload.length);
    a.ws.close();
    b.ws.close();
  });

  it("acks Forbidden without permission and Duplicate on a reused ackId", async () => {
    const a = await tunnelClient("s2", "u", []);
    a.ws.send(
      encodeUpstream({ type: "sendToGroup", group: "s2", ackId: 1, data: { kind: "text", text: "x" } }),
    );
    a.ws.send(
      encodeUpstream({ type: "sendToGroup", group: "s2", ackId: 1, data: { kind: "text", text: "x" } }),
    );
    a.ws.send(encodeUpstream({ type: "joinGroup", group: "other", ackId: 2 }));
    a.ws.send(encodeUpstream({ type: "ping" }));
    await waitDecoded(a, (m) => m.type === "pong");
    const acks = decoded(a).filter((m) => m.type === "ack");
    expect(acks).toEqual([
      { type: "ack", ackId: 1, success: false, error: { name: "Forbidden", message: expect.any(String) } },
      { type: "ack", ackId: 1, success: false, error: { name: "Duplicate", message: expect.any(String) } },
      { type: "ack", ackId: 2, success: false, error: { name: "Forbidden", message: expect.any(String) } },
    ]);
    a.ws.close();
  });

  it("closes 1003 on a text frame and 1007 on an undecodable frame, reporting disconnected", async () => {
    const a = await tunnelClient("s3", "u");
    const gone = new Promise((resolve) =>
      emulator.lifecycle.on("disconnected", (e) => e.connectionId === a.id && resolve(e)),
    );
    a.ws.send("not protobuf");
    expect((await a.closed).code).toBe(1003);
    await expect(gone).resolves.toMatchObject({ connectionId: a.id });
    const b = await tunnelClient("s3", "u");
    b.ws.send(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expect((await b.closed).code).toBe(1007);
  });

  it("refuses frames over 1 MB with 1009", async () => {
    const a = await tunnelClient("s4", "u");
    a.ws.send(Buffer.alloc(1024 * 1024 + 1));
    expect((await a.closed).code).toBe(1009);
  });

  it("disconnects a receiver that does not read as SlowClient, and the sender carries on", async () => {
    const a = await tunnelClient("s5", "sender");
    const b = await tunnelClient("s5", "receiver");
    const slow = new Promise<{ reason: string }>((resolve) =>
      emulator.lifecycle.on("disconnected", (e) => e.connectionId === b.id && resolve(e)),
    );
    // The receiver stops reading: kernel buffers fill, then the emulator's queue.
    (b.ws as unknown as { _socket: Socket })._socket.pause();
    const chunk = Buffer.alloc(64 * 1024, 1);
    let stop = false;
    void slow.then(() => (stop = true));
    for (let i = 0; i < 2000 && !stop; i++) {
      a.ws.send(
        encodeUpstream({
          type: "sendToGroup",
          group: "s5",
          noEcho: true,
          data: { kind: "binary", bytes: chunk },
        }),
      );
      // Pace the sender on its own socket (a ping's callback fires once written) so only the receiver lags.
      if (i % 32 === 31) await new Promise<void>((r) => a.ws.ping(undefined, undefined, () => r()));
    }
    await expect(slow).resolves.toMatchObject({ reason: "SlowClient" });
    expect(emulator.dropTransport(HUB, b.id)).toBe(false);
    // The sender's connection is unaffected.
    a.ws.send(encodeUpstream({ type: "ping" }));
    await waitDecoded(a, (m) => m.type === "pong");
    expect(a.ws.readyState).toBe(WebSocket.OPEN);
    (b.ws as unknown as { _socket: Socket })._socket.resume();
    b.ws.terminate();
    a.ws.close();
    await once(a.ws, "close");
  });
});

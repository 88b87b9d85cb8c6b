import protobuf from "protobufjs";
import {
  decodeDownstream,
  decodeGroupBinaryData,
  decodeUpstream,
  encodeDownstream,
  encodeGroupBinaryData,
  encodeGroupBinaryDataPrefix,
  encodeUpstream,
  ProtocolDecodeError,
  type DownstreamMessage,
  type UpstreamMessage,
} from "../../../client/webpubsub";

describe("protobuf client-protocol codec", () => {
  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  it.each<UpstreamMessage>([
    { type: "sendToGroup", group: "g", ackId: 7, data: { kind: "binary", bytes }, noEcho: true },
    {
      type: "sendToGroup",
      group: "grüppe",
      data: { kind: "binary", bytes: Buffer.alloc(200_000, 3) },
      noEcho: false,
    },
    { type: "sendToGroup", group: "g", data: { kind: "binary", bytes: Buffer.alloc(0) } },
    { type: "sendToGroup", group: "g", data: { kind: "text", text: "hé" } },
    { type: "event", event: "e", ackId: 2 ** 40, data: { kind: "json", json: '{"a":1}' } },
    { type: "event", event: "e", data: { kind: "protobuf", typeUrl: "type.googleapis.com/x", value: bytes } },
    { type: "joinGroup", group: "g", ackId: 1 },
    { type: "leaveGroup", group: "g" },
    { type: "sequenceAck", sequenceId: 42 },
    { type: "ping" },
  ])("round-trips upstream %j", (msg) => {
    const decoded = decodeUpstream(encodeUpstream(msg));
    expect(JSON.parse(JSON.stringify(decoded))).toEqual(JSON.parse(JSON.stringify(msg)));
  });

  it.each<DownstreamMessage>([
    { type: "ack", ackId: 1, success: true },
    { type: "ack", ackId: 2, success: false, error: { name: "Forbidden", message: "no" } },
    { type: "message", from: "group", group: "g", data: { kind: "binary", bytes }, sequenceId: 9 },
    { type: "message", from: "server", data: { kind: "text", text: "hi" } },
    { type: "connected", connectionId: "c", userId: "u", reconnectionToken: "t" },
    { type: "disconnected", reason: "bye" },
    { type: "pong" },
  ])("round-trips downstream %j", (msg) => {
    const decoded = decodeDownstream(encodeDownstream(msg));
    expect(JSON.parse(JSON.stringify(decoded))).toEqual(JSON.parse(JSON.stringify(msg)));
  });

  it("decodes binary payloads as views into the frame, without copying", () => {
    const frame = encodeUpstream({
      type: "sendToGroup",
      group: "g",
      data: { kind: "binary", bytes: Buffer.alloc(1000, 7) },
    });
    const received = Buffer.from(frame);
    const msg = decodeUpstream(received);
    if (msg.type !== "sendToGroup" || msg.data?.kind !== "binary") throw new Error("wrong shape");
    expect(msg.data.bytes.length).toBe(1000);
    expect(msg.data.bytes.buffer).toBe(received.buffer);
    received[received.length - 1] = 9;
    expect(msg.data.bytes[999]).toBe(9);
  });

  it("fast path: prefix + payload is the message the reflective encoder describes", () => {
    const root = protobuf.parse(
      `syntax="proto3"; message D { oneof m { X a = 1; Data data_message = 2; } }
       message X {} message Data { string from = 1; optional string group = 2; MD data = 3; optional uint64 sequence_id = 4; }
       message MD { oneof d { string t = 1; bytes binary_data = 2; } }`,
      { keepCase: true },
    ).root;
    const D = root.lookupType("D");
    const cases: [string | undefined, number | undefined, number][] = [
      ["grp", undefined, 65536],
      [undefined, 300, 10],
      ["", 2 ** 35, 0],
      ["é", 1, 200],
    ];
    for (const [group, seq, size] of cases) {
      const payload = Buffer.alloc(size, 3);
      const object = {
        data_message: { from: "group", group, data: { binary_data: payload }, sequence_id: seq },
      };
      const ours = Buffer.concat([encodeGroupBinaryDataPrefix("group", group, size, seq), payload]);
      expect(Buffer.compare(ours, encodeGroupBinaryData("group", group, payload, seq))).toBe(0);
      const opts = { longs: Number, bytes: Array };
      expect(D.toObject(D.decode(ours), opts)).toEqual(D.toObject(D.fromObject(object), opts));
      // Without a sequence id the field order is canonical, so the bytes are identical too.
      if (seq === undefined)
        expect(Buffer.compare(ours, Buffer.from(D.encode(D.fromObject(object)).finish()))).toBe(0);
      expect(decodeDownstream(ours)).toMatchObject({
        type: "message",
        from: "group",
        ...(seq === undefined ? {} : { sequenceId: seq }),
      });
    }
  });

  it("decodes a group's binary data without protobufjs, exactly as protobufjs does", () => {
    const payload = Buffer.from([9, 8, 7, 6, 5]);
    const shapes: Buffer[] = [
      encodeGroupBinaryData("group", "stream.abc", payload, undefined),
      encodeGroupBinaryData("group", "stream.abc", payload, 2 ** 40),
      encodeGroupBinaryData("group", undefined, Buffer.alloc(300_000, 1), 7),
      encodeGroupBinaryData("", "", Buffer.alloc(0)),
      // protobufjs's own field order (data before sequence_id)
      Buffer.from(
        encodeDownstream({
          type: "message",
          from: "group",
          group: "g",
          sequenceId: 5,
          data: { kind: "binary", bytes: payload },
        }),
      ),
    ];
    for (const frame of shapes) {
      const fast = decodeGroupBinaryData(frame);
      expect(fast).toBeDefined();
      // A plain Uint8Array takes the protobufjs path (whose bytes are then a Uint8Array view).
      const slow = decodeDownstream(new Uint8Array(frame)) as { data: { bytes: Uint8Array } };
      expect(fast).toEqual({ ...slow, data: { ...slow.data, bytes: Buffer.from(slow.data.bytes) } });
      // The payload is a view into the frame, not a copy.
      const bytes = (fast as unknown as { data: { bytes: Buffer } }).data.bytes;
      if (bytes.length > 0) expect(bytes.buffer).toBe(frame.buffer);
    }
    // Every other shape goes through protobufjs: other messages, data kinds, non-ASCII strings,
    // repeated fields, trailing bytes, and every truncation (which protobufjs rejects).
    const others: Buffer[] = [
      Buffer.from(encodeDownstream({ type: "ack", ackId: 1, success: true })),
      Buffer.from(encodeDownstream({ type: "message", from: "group", data: { kind: "text", text: "hi" } })),
      encodeGroupBinaryData("group", "grüppe", payload),
      Buffer.concat([encodeGroupBinaryData("group", "g", payload), Buffer.from([0x12, 0])]),
    ];
    const repeated = encodeGroupBinaryData("group", "g", payload);
    others.push(
      Buffer.concat([
        Buffer.from([0x12, repeated[1]! + 3]),
        repeated.subarray(2),
        Buffer.from([0x12, 1, 0x41]),
      ]),
    );
    for (const frame of others) expect(decodeGroupBinaryData(frame)).toBeUndefined();
    const whole = encodeGroupBinaryData("group", "stream.abc", payload, 300);
    for (let cut = 0; cut < whole.length; cut++) {
      const part = whole.subarray(0, cut);
      expect(decodeGroupBinaryData(part)).toBeUndefined();
      expect(() => decodeDownstream(part)).toThrow(ProtocolDecodeError);
    }
  });

  it("rejects garbage with a ProtocolDecodeError", () => {
    expect(() => decodeUpstream(Buffer.from([0xff, 0xff, 0xff]))).toThrow(ProtocolDecodeError);
    expect(() => decodeUpstream(Buffer.alloc(0))).toThrow(ProtocolDecodeError);
    expect(() => decodeDownstream(Buffer.from([0x0a, 0x05, 1]))).toThrow(ProtocolDecodeError);
  });
});

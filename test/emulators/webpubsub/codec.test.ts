import protobuf from "protobufjs";
import {
  decodeDownstream,
  decodeUpstream,
  encodeDownstream,
  encodeGroupBinaryData,
  encodeUpstream,
  ProtocolDecodeError,
  type DownstreamMessage,
  type UpstreamMessage,
} from "../../../shared/webpubsub";

describe("protobuf client-protocol codec", () => {
  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  it.each<UpstreamMessage>([
    { type: "sendToGroup", group: "g", ackId: 7, data: { kind: "binary", bytes }, noEcho: true },
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

  it("fast path is byte-identical to the reflective encoder", () => {
    const root = protobuf.parse(
      `syntax="proto3"; message D { oneof m { X a = 1; Data data_message = 2; } }
       message X {} message Data { string from = 1; optional string group = 2; MD data = 3; optional uint64 sequence_id = 4; }
       message MD { oneof d { string t = 1; bytes binary_data = 2; } }`,
      { keepCase: true },
    ).root;
    const D = root.lookupType("D");
    for (const [group, seq, size] of [
      ["grp", undefined, 65536],
      [undefined, 300, 10],
      ["", 1, 0],
    ] as const) {
      const payload = Buffer.alloc(size, 3);
      const expected = D.encode(
        D.fromObject({
          data_message: { from: "group", group, data: { binary_data: payload }, sequence_id: seq },
        }),
      ).finish();
      expect(Buffer.compare(encodeGroupBinaryData("group", group, payload, seq), Buffer.from(expected))).toBe(
        0,
      );
    }
  });

  it("rejects garbage with a ProtocolDecodeError", () => {
    expect(() => decodeUpstream(Buffer.from([0xff, 0xff, 0xff]))).toThrow(ProtocolDecodeError);
    expect(() => decodeUpstream(Buffer.alloc(0))).toThrow(ProtocolDecodeError);
    expect(() => decodeDownstream(Buffer.from([0x0a, 0x05, 1]))).toThrow(ProtocolDecodeError);
  });
});

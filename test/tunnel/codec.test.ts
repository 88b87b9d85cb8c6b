import { randomBytes } from "node:crypto";
import { crc32 } from "../../client/tunnel/crc32";
import {
  type Frame,
  HEADER_SIZE,
  LIMITS,
  decodeFrame,
  encodeData,
  encodeFrame,
  isTunnelError,
} from "../../client/tunnel";
import { utf8Limited } from "../../client/tunnel/codec";

const hello: Frame = {
  type: "hello",
  minVersion: 1,
  maxVersion: 3,
  streamWindowBytes: 2 * 1024 * 1024,
  streamWindowMessages: 256,
  channelWindowBytes: 512 * 1024,
  channelWindowMessages: 64,
  maxChannels: 100,
  maxDataPayload: 65536,
};

const samples: Frame[] = [
  hello,
  { type: "close", reason: "SequenceError", message: "expected 3, got 5 – ünïcode" },
  { type: "ping", nonce: 0xfffffffe },
  { type: "pong", nonce: 7 },
  { type: "window", streamBytes: 65536, streamMessages: 3, channels: [] },
  {
    type: "window",
    streamBytes: 0,
    streamMessages: 0,
    channels: [
      { channel: 1, bytes: 524288, messages: 64 },
      { channel: 0xffffffff, bytes: 1, messages: 0 },
    ],
  },
  { type: "open", channel: 1, label: "" },
  { type: "open", channel: 42, label: "ssh session from büro" },
  { type: "accept", channel: 0xffffffff },
  { type: "refuse", channel: 3, reason: "ChannelLimit", message: "at most 2" },
  { type: "data", channel: 9, payload: randomBytes(65536) },
  { type: "data", channel: 9, payload: Buffer.from([0]) },
  { type: "fin", channel: 5 },
  { type: "reset", channel: 5, reason: "TargetError", message: "ECONNREFUSED" },
];

/** Re-seals a frame after editing it, so the structural checks (not the CRC) are what is tested. */
function reseal(buf: Buffer): Buffer {
  buf.writeUInt32BE(crc32(buf.subarray(4)), 0);
  return buf;
}

function expectError(buf: Uint8Array, code: "ProtocolError" | "FrameCorrupt"): string {
  const result = decodeFrame(buf);
  if (result.ok) throw new Error(`decoded ${result.frame.type} from an invalid frame`);
  expect(isTunnelError(result.error)).toBe(true);
  expect(result.error.code).toBe(code);
  return result.error.message;
}

describe("tunnel frame codec", () => {
  it.each(samples.map((f) => [f.type, f] as const))("round-trips %s", (_type, frame) => {
    const encoded = encodeFrame(12345, frame);
    const result = decodeFrame(encoded);
    expect(result).toEqual({ ok: true, seq: 12345, frame });
  });

  it("decodes from a Uint8Array view with an offset, and DATA payloads are views", () => {
    const encoded = encodeFrame(1, { type: "data", channel: 2, payload: Buffer.from("hello") });
    const backing = new Uint8Array(encoded.length + 10);
    backing.set(encoded, 10);
    const result = decodeFrame(backing.subarray(10));
    expect(result.ok && result.frame.type === "data" && result.frame.payload.toString()).toBe("hello");
    if (result.ok && result.frame.type === "data") expect(result.frame.payload.buffer).toBe(backing.buffer);
  });

  it("builds one DATA frame from several chunks, skipping bytes already sent", () => {
    const chunks = [Buffer.from("abc"), Buffer.from("defg"), Buffer.from("hi")];
    const result = decodeFrame(encodeData(0, 1, chunks, 2, 6));
    expect(result.ok && result.frame.type === "data" && result.frame.payload.toString()).toBe("cdefgh");
  });

  it("keeps the header at 14 bytes and a full DATA frame far below the relay's 1 MB", () => {
    expect(encodeFrame(0, { type: "fin", channel: 1 }).length).toBe(HEADER_SIZE);
    const largest = encodeFrame(0, {
      type: "data",
      channel: 1,
      payload: Buffer.alloc(LIMITS.maxDataPayload),
    });
    expect(largest.length).toBeLessThan(1_000_000);
  });

  it("cuts long reason messages and labels at a character boundary", () => {
    const cut = utf8Limited("€".repeat(400), 1024);
    expect(cut.length).toBe(1023);
    expect(cut.toString()).toBe("€".repeat(341));
    const frame = decodeFrame(encodeFrame(0, { type: "open", channel: 1, label: "ü".repeat(300) }));
    expect(frame.ok && frame.frame.type === "open" && frame.frame.label).toBe("ü".repeat(128));
  });

  it("reports unknown reason codes as Unknown rather than failing", () => {
    const buf = encodeFrame(0, { type: "close", reason: "Normal", message: "" });
    buf.writeUInt16BE(999, HEADER_SIZE);
    const result = decodeFrame(reseal(buf));
    expect(result.ok && result.frame.type === "close" && result.frame.reason).toBe("Unknown");
    // Re-sending an Unknown reason falls back to a code this version knows, instead of throwing.
    const resent = decodeFrame(encodeFrame(1, { type: "reset", channel: 1, reason: "Unknown", message: "" }));
    expect(resent.ok && resent.frame.type === "reset" && resent.frame.reason).toBe("ApplicationError");
  });

  it("rejects corruption and truncation with FrameCorrupt", () => {
    for (const frame of samples) {
      const encoded = encodeFrame(7, frame);
      for (let i = 0; i < encoded.length; i += Math.max(1, encoded.length >> 5)) {
        const flipped = Buffer.from(encoded);
        flipped[i] = (flipped[i] ?? 0) ^ (1 << (i % 8));
        expectError(flipped, "FrameCorrupt");
        expectError(encoded.subarray(0, i), "FrameCorrupt");
      }
    }
  });

  it.each([
    ["unknown type", (b: Buffer) => b.writeUInt8(0x7f, 4), /unknown frame type/],
    ["flags", (b: Buffer) => b.writeUInt8(1, 5), /flags/],
    ["stream frame on a channel", (b: Buffer) => b.writeUInt32BE(3, 10), /channel 0/],
  ])("rejects %s with ProtocolError", (_name, edit, message) => {
    const buf = encodeFrame(0, { type: "ping", nonce: 1 });
    edit(buf);
    expect(expectError(reseal(buf), "ProtocolError")).toMatch(message);
  });

  it.each<[string, Frame, (b: Buffer) => void, RegExp]>([
    [
      "channel frame on channel 0",
      { type: "fin", channel: 1 },
      (b) => b.writeUInt32BE(0, 10),
      /needs a channel/,
    ],
    ["empty DATA", { type: "fin", channel: 1 }, (b) => b.writeUInt8(0x13, 4), /empty DATA/],
    ["a FIN with a body", { type: "open", channel: 1, label: "x" }, (b) => b.writeUInt8(0x14, 4), /FIN body/],
    [
      "invalid UTF-8",
      { type: "open", channel: 1, label: "é" },
      (b) => b.writeUInt8(0xff, HEADER_SIZE),
      /UTF-8/,
    ],
    [
      "a short WINDOW",
      { type: "window", streamBytes: 1, streamMessages: 1, channels: [] },
      (b) => b.writeUInt16BE(2, HEADER_SIZE + 6),
      /WINDOW body/,
    ],
    [
      "HELLO with windows out of range",
      hello,
      (b) => b.writeUInt32BE(64 * 1024 * 1024, HEADER_SIZE + 4),
      /streamWindowBytes/,
    ],
    [
      "HELLO with a channel window above the stream's",
      hello,
      (b) => b.writeUInt16BE(300, HEADER_SIZE + 14),
      /channelWindowMessages/,
    ],
    ["HELLO with tiny frames", hello, (b) => b.writeUInt32BE(10, HEADER_SIZE + 20), /maxDataPayload/],
    ["HELLO with an empty version range", hello, (b) => b.writeUInt16BE(0, HEADER_SIZE + 2), /version range/],
  ])("rejects %s with ProtocolError", (_name, frame, edit, message) => {
    const buf = encodeFrame(0, frame);
    edit(buf);
    expect(expectError(reseal(buf), "ProtocolError")).toMatch(message);
  });

  it("never throws on random input, sealed or not (fuzz)", () => {
    let decoded = 0;
    for (let i = 0; i < 4000; i++) {
      const raw = randomBytes(i % 97);
      if (i % 2 === 0 && raw.length >= HEADER_SIZE) {
        // Half the inputs get a plausible type, no flags and a valid CRC, to reach the body checks.
        raw[4] = [1, 2, 3, 4, 5, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15][i % 11]!;
        raw[5] = 0;
        reseal(raw);
      }
      const result = decodeFrame(raw);
      if (result.ok) {
        decoded++;
        if ("reason" in result.frame && result.frame.reason === "Unknown") continue;
        // Whatever decodes must re-encode to a frame that decodes to the same thing.
        expect(decodeFrame(encodeFrame(result.seq, result.frame))).toEqual(result);
      } else {
        expect(["ProtocolError", "FrameCorrupt"]).toContain(result.error.code);
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });
});

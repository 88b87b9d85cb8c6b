/**
 * The frame checksum on runtimes without `zlib.crc32` (Node before 20.15, e.g. Debian 12's Node
 * 18): the portable CRC must give the very bytes the native one gives, or agents on old and new
 * runtimes could not talk to each other.
 */
import { randomBytes } from "node:crypto";
import * as zlib from "node:zlib";
import { portableCrc32 } from "../../client/tunnel/crc32";
import type * as Codec from "../../client/tunnel/codec";

it("the portable CRC-32 equals zlib's on empty, short, odd and frame-sized inputs", () => {
  for (const size of [0, 1, 3, 7, 15, 16, 17, 255, 1024, 65_536 + 10, 1_000_003]) {
    const data = randomBytes(size);
    expect({ size, crc: portableCrc32(data) }).toEqual({ size, crc: zlib.crc32(data) });
  }
  // The check value of CRC-32/ISO-HDLC.
  expect(portableCrc32(Buffer.from("123456789"))).toBe(0xcbf43926);
});

it("without zlib.crc32 (Node 18) the codec writes and reads the same frames as with it", () => {
  const payload = randomBytes(4096);
  const frame = { type: "data", channel: 3, payload } as const;
  const native = jest.requireActual<typeof Codec>("../../client/tunnel/codec");
  const withNative = native.encodeFrame(11, frame);
  let encoded: Buffer | undefined;
  let decoded: ReturnType<typeof Codec.decodeFrame> | undefined;
  jest.isolateModules(() => {
    jest.doMock("node:zlib", () => {
      const { crc32: _absent, ...rest } = jest.requireActual<typeof zlib>("node:zlib");
      return rest;
    });
    const old = jest.requireActual<typeof Codec>("../../client/tunnel/codec");
    encoded = old.encodeFrame(11, frame);
    decoded = old.decodeFrame(withNative);
  });
  jest.dontMock("node:zlib");
  expect(encoded).toEqual(withNative);
  expect(decoded).toMatchObject({ ok: true, frame: { type: "data", channel: 3 } });
});

/**
 * Frame codec of docs/tunnel-protocol.md §2–3. The decoder is strict and total: any input yields a
 * frame or a TunnelError (ProtocolError or FrameCorrupt), never an exception.
 */
import { isUtf8 } from "node:buffer";
import { crc32 } from "./crc32";
import { TunnelError } from "./errors";
import {
  CLOSE_REASONS,
  type CloseReason,
  REFUSE_REASONS,
  type RefuseReason,
  RESET_REASONS,
  type ResetReason,
  reasonCode,
  reasonName,
} from "./reasons";

export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 14;
export const MAX_REASON_MESSAGE_BYTES = 1024;
export const MAX_LABEL_BYTES = 256;

/**
 * The DATA payload a side accepts unless told otherwise (HELLO `maxDataPayload`; a channel uses the
 * smaller of both sides'). A frame of this payload is 64 KiB exactly, 32 whole units of Web PubSub's
 * 2 KB outbound billing (64 KiB of payload plus the header spilled into a 33rd). Up to 256 KiB may
 * be configured: whole 256 KiB frames measured no faster here and no cheaper for the agent (bulk
 * 99% of the bare relay and 1,547 ms of agent CPU per GiB at 64 KiB, against 109% and 1,730 ms at
 * 256 KiB), while they starved channels sharing a stream (the 200-channel fairness figure fell from
 * 75% to 0%); docs/performance.md, "Channel cost".
 */
export const DEFAULT_DATA_PAYLOAD = 64 * 1024 - HEADER_SIZE;

/**
 * The largest DATA payload a sender puts in one frame while other channels of the stream wait to
 * send (64 KiB of frame, 32 whole billing units): a frame holds the stream for as long as it takes
 * to cross the slowest link, so where a larger payload is configured a keystroke beside a download
 * still waits behind 64 KiB only. A sender's choice, not a wire change.
 */
export const SHARED_DATA_PAYLOAD = 64 * 1024 - HEADER_SIZE;

/**
 * Feature bits of the HELLO extension (§4): a side sets a bit only for what it supports, and a
 * feature is on for the stream only when both HELLOs carry its bit.
 */
export const FEATURES = {
  /** DATA and FIN may follow OPEN before the ACCEPT, within the channel's initial credit (§5). */
  earlyData: 0x1,
  /**
   * An OPEN may carry the flag `OPEN_NO_ACCEPT`: the device then sends no ACCEPT, and its first
   * frame on the channel stands for it (§5). Used with early data, where nobody waits for ACCEPT.
   */
  implicitAccept: 0x2,
  /**
   * The side that receives a CLOSE answers it with a CLOSE of its own, and the side that sent the
   * first CLOSE stays on the relay until that answer (or for CLOSE_ANSWER_TIMEOUT_MS), so the
   * answering side's byte report, sent before its answer, is not lost to the relay's teardown (§4).
   */
  closeAnswer: 0x4,
} as const;

/** OPEN header flag (§2, feature `implicitAccept`): the opener wants no ACCEPT. */
export const OPEN_NO_ACCEPT = 0x1;

/** Protocol bounds on the limits a HELLO may grant (§4). */
export const LIMITS = {
  maxStreamWindowBytes: 3 * 1024 * 1024,
  maxStreamWindowMessages: 512,
  minDataPayload: 1024,
  maxDataPayload: 256 * 1024,
  /** WINDOW entries per frame: 10 bytes each keeps a WINDOW under 64 KiB. */
  maxWindowEntries: 6000,
} as const;

const TYPE = {
  hello: 0x01,
  close: 0x02,
  ping: 0x03,
  pong: 0x04,
  window: 0x05,
  open: 0x10,
  accept: 0x11,
  refuse: 0x12,
  data: 0x13,
  fin: 0x14,
  reset: 0x15,
} as const;

export interface HelloFields {
  minVersion: number;
  maxVersion: number;
  streamWindowBytes: number;
  streamWindowMessages: number;
  channelWindowBytes: number;
  channelWindowMessages: number;
  maxChannels: number;
  maxDataPayload: number;
  /** FEATURES bits; absent or 0 is sent as the plain v1 HELLO, which every peer understands. */
  features?: number;
}

export interface WindowEntry {
  channel: number;
  bytes: number;
  messages: number;
}

export type Frame =
  | ({ type: "hello" } & HelloFields)
  | { type: "close"; reason: CloseReason; message: string }
  | { type: "ping" | "pong"; nonce: number }
  | { type: "window"; streamBytes: number; streamMessages: number; channels: WindowEntry[] }
  | { type: "open"; channel: number; label: string; noAccept?: boolean }
  | { type: "accept"; channel: number }
  | { type: "fin"; channel: number }
  | { type: "refuse"; channel: number; reason: RefuseReason; message: string }
  | { type: "reset"; channel: number; reason: ResetReason; message: string }
  | { type: "data"; channel: number; payload: Buffer };

export type FrameType = Frame["type"];
export type ChannelFrame = Extract<Frame, { channel: number }>;

export type DecodeResult = { ok: true; seq: number; frame: Frame } | { ok: false; error: TunnelError };

const HELLO_SIZE = 2 + 2 + 4 + 2 + 4 + 2 + 4 + 4;

/** Cuts a string to at most `max` UTF-8 bytes without splitting a character. */
export function utf8Limited(text: string, max: number): Buffer {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

function frameBuffer(type: number, seq: number, channel: number, bodySize: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + bodySize);
  buf.writeUInt8(type, 4);
  buf.writeUInt8(0, 5);
  buf.writeUInt32BE(seq >>> 0, 6);
  buf.writeUInt32BE(channel, 10);
  return buf;
}

function seal(buf: Buffer): Buffer {
  buf.writeUInt32BE(crc32(buf.subarray(4)), 0);
  return buf;
}

function reasonFrame(type: number, seq: number, channel: number, code: number, message: string): Buffer {
  const text = utf8Limited(message, MAX_REASON_MESSAGE_BYTES);
  const buf = frameBuffer(type, seq, channel, 2 + text.length);
  buf.writeUInt16BE(code, HEADER_SIZE);
  text.copy(buf, HEADER_SIZE + 2);
  return seal(buf);
}

/**
 * One DATA frame from a list of chunks: one allocation and one copy of the payload. `offset` skips
 * bytes already sent from the first chunk; `length` bytes are taken in total.
 */
export function encodeData(
  seq: number,
  channel: number,
  chunks: readonly Buffer[],
  offset: number,
  length: number,
): Buffer {
  const buf = frameBuffer(TYPE.data, seq, channel, length);
  let at = HEADER_SIZE;
  let skip = offset;
  for (const chunk of chunks) {
    if (at === buf.length) break;
    const take = Math.min(chunk.length - skip, buf.length - at);
    chunk.copy(buf, at, skip, skip + take);
    at += take;
    skip = 0;
  }
  if (at !== buf.length) throw new RangeError("encodeData: chunks hold fewer bytes than length");
  return seal(buf);
}

export function encodeFrame(seq: number, frame: Frame): Buffer {
  switch (frame.type) {
    case "hello": {
      const features = frame.features ?? 0;
      const buf = frameBuffer(TYPE.hello, seq, 0, HELLO_SIZE + (features ? 4 : 0));
      let at = HEADER_SIZE;
      at = buf.writeUInt16BE(frame.minVersion, at);
      at = buf.writeUInt16BE(frame.maxVersion, at);
      at = buf.writeUInt32BE(frame.streamWindowBytes, at);
      at = buf.writeUInt16BE(frame.streamWindowMessages, at);
      at = buf.writeUInt32BE(frame.channelWindowBytes, at);
      at = buf.writeUInt16BE(frame.channelWindowMessages, at);
      at = buf.writeUInt32BE(frame.maxChannels, at);
      at = buf.writeUInt32BE(frame.maxDataPayload, at);
      if (features) buf.writeUInt32BE(features >>> 0, at);
      return seal(buf);
    }
    case "close":
      return reasonFrame(
        TYPE.close,
        seq,
        0,
        reasonCode(CLOSE_REASONS, frame.reason, "InternalError"),
        frame.message,
      );
    case "ping":
    case "pong": {
      const buf = frameBuffer(TYPE[frame.type], seq, 0, 4);
      buf.writeUInt32BE(frame.nonce >>> 0, HEADER_SIZE);
      return seal(buf);
    }
    case "window": {
      if (frame.channels.length > LIMITS.maxWindowEntries) throw new RangeError("too many WINDOW entries");
      const buf = frameBuffer(TYPE.window, seq, 0, 8 + 10 * frame.channels.length);
      let at = HEADER_SIZE;
      at = buf.writeUInt32BE(frame.streamBytes, at);
      at = buf.writeUInt16BE(frame.streamMessages, at);
      at = buf.writeUInt16BE(frame.channels.length, at);
      for (const entry of frame.channels) {
        at = buf.writeUInt32BE(entry.channel, at);
        at = buf.writeUInt32BE(entry.bytes, at);
        at = buf.writeUInt16BE(entry.messages, at);
      }
      return seal(buf);
    }
    case "open": {
      const label = utf8Limited(frame.label, MAX_LABEL_BYTES);
      const buf = frameBuffer(TYPE.open, seq, frame.channel, label.length);
      if (frame.noAccept) buf.writeUInt8(OPEN_NO_ACCEPT, 5);
      label.copy(buf, HEADER_SIZE);
      return seal(buf);
    }
    case "accept":
    case "fin":
      return seal(frameBuffer(TYPE[frame.type], seq, frame.channel, 0));
    case "refuse":
      return reasonFrame(
        TYPE.refuse,
        seq,
        frame.channel,
        reasonCode(REFUSE_REASONS, frame.reason, "Refused"),
        frame.message,
      );
    case "reset":
      return reasonFrame(
        TYPE.reset,
        seq,
        frame.channel,
        reasonCode(RESET_REASONS, frame.reason, "ApplicationError"),
        frame.message,
      );
    case "data":
      return encodeData(seq, frame.channel, [frame.payload], 0, frame.payload.length);
  }
}

class Malformed extends Error {}

function fail(message: string): never {
  throw new Malformed(message);
}

function text(body: Buffer, max: number, what: string): string {
  if (body.length > max) fail(`${what} longer than ${max} bytes`);
  if (!isUtf8(body)) fail(`${what} is not valid UTF-8`);
  return body.toString("utf8");
}

function exactBody(body: Buffer, size: number, type: string): void {
  if (body.length !== size) fail(`${type} body must be ${size} bytes, got ${body.length}`);
}

function positive(value: number, max: number, field: string): number {
  if (value < 1 || value > max) fail(`HELLO ${field} ${value} outside 1..${max}`);
  return value;
}

function decodeHello(body: Buffer): Frame {
  // Extension bytes after the v1 fields are allowed, so a later version can extend HELLO. The first
  // four are the feature bits; peers released before them ignore them, and send none.
  if (body.length < HELLO_SIZE) fail(`HELLO body must be at least ${HELLO_SIZE} bytes`);
  const minVersion = body.readUInt16BE(0);
  const maxVersion = body.readUInt16BE(2);
  if (minVersion < 1 || minVersion > maxVersion) fail(`HELLO version range ${minVersion}..${maxVersion}`);
  const streamWindowBytes = positive(body.readUInt32BE(4), LIMITS.maxStreamWindowBytes, "streamWindowBytes");
  const streamWindowMessages = positive(
    body.readUInt16BE(8),
    LIMITS.maxStreamWindowMessages,
    "streamWindowMessages",
  );
  const channelWindowBytes = positive(body.readUInt32BE(10), streamWindowBytes, "channelWindowBytes");
  const channelWindowMessages = positive(
    body.readUInt16BE(14),
    streamWindowMessages,
    "channelWindowMessages",
  );
  const maxChannels = positive(body.readUInt32BE(16), 0xffffffff, "maxChannels");
  const maxDataPayload = body.readUInt32BE(20);
  if (maxDataPayload < LIMITS.minDataPayload || maxDataPayload > LIMITS.maxDataPayload) {
    fail(`HELLO maxDataPayload ${maxDataPayload} outside ${LIMITS.minDataPayload}..${LIMITS.maxDataPayload}`);
  }
  return {
    type: "hello",
    minVersion,
    maxVersion,
    streamWindowBytes,
    streamWindowMessages,
    channelWindowBytes,
    channelWindowMessages,
    maxChannels,
    maxDataPayload,
    ...(body.length >= HELLO_SIZE + 4 ? { features: body.readUInt32BE(HELLO_SIZE) } : {}),
  };
}

function decodeWindow(body: Buffer): Frame {
  if (body.length < 8) fail("WINDOW body too short");
  const count = body.readUInt16BE(6);
  exactBody(body, 8 + 10 * count, "WINDOW");
  const channels: WindowEntry[] = new Array<WindowEntry>(count);
  for (let i = 0, at = 8; i < count; i++, at += 10) {
    const channel = body.readUInt32BE(at);
    if (channel === 0) fail("WINDOW entry for channel 0");
    channels[i] = { channel, bytes: body.readUInt32BE(at + 4), messages: body.readUInt16BE(at + 8) };
  }
  return {
    type: "window",
    streamBytes: body.readUInt32BE(0),
    streamMessages: body.readUInt16BE(4),
    channels,
  };
}

function reasonOf(body: Buffer, type: string): { code: number; message: string } {
  if (body.length < 2) fail(`${type} body too short`);
  return { code: body.readUInt16BE(0), message: text(body.subarray(2), MAX_REASON_MESSAGE_BYTES, "message") };
}

const KNOWN_TYPES = new Set<number>(Object.values(TYPE));

function decodeBody(type: number, flags: number, channel: number, body: Buffer): Frame {
  // The one flag of v1 (§2); whether the stream negotiated it is the session's check.
  if (flags !== 0 && !(type === TYPE.open && flags === OPEN_NO_ACCEPT)) {
    fail(`unknown flags 0x${flags.toString(16)}`);
  }
  if (!KNOWN_TYPES.has(type)) fail(`unknown frame type 0x${type.toString(16)}`);
  const streamLevel = type < 0x10;
  if (streamLevel && channel !== 0) fail(`frame type 0x${type.toString(16)} must use channel 0`);
  if (!streamLevel && channel === 0) fail(`frame type 0x${type.toString(16)} needs a channel id`);
  switch (type) {
    case TYPE.hello:
      return decodeHello(body);
    case TYPE.close: {
      const { code, message } = reasonOf(body, "CLOSE");
      return { type: "close", reason: reasonName(CLOSE_REASONS, code), message };
    }
    case TYPE.ping:
    case TYPE.pong:
      exactBody(body, 4, "PING/PONG");
      return { type: type === TYPE.ping ? "ping" : "pong", nonce: body.readUInt32BE(0) };
    case TYPE.window:
      return decodeWindow(body);
    case TYPE.open:
      return {
        type: "open",
        channel,
        label: text(body, MAX_LABEL_BYTES, "label"),
        ...(flags === OPEN_NO_ACCEPT ? { noAccept: true } : {}),
      };
    case TYPE.accept:
      exactBody(body, 0, "ACCEPT");
      return { type: "accept", channel };
    case TYPE.refuse: {
      const { code, message } = reasonOf(body, "REFUSE");
      return { type: "refuse", channel, reason: reasonName(REFUSE_REASONS, code), message };
    }
    case TYPE.data:
      if (body.length === 0) fail("empty DATA frame");
      if (body.length > LIMITS.maxDataPayload) fail(`DATA payload of ${body.length} bytes`);
      return { type: "data", channel, payload: body };
    case TYPE.fin:
      exactBody(body, 0, "FIN");
      return { type: "fin", channel };
    case TYPE.reset: {
      const { code, message } = reasonOf(body, "RESET");
      return { type: "reset", channel, reason: reasonName(RESET_REASONS, code), message };
    }
    default:
      return fail(`unknown frame type 0x${type.toString(16)}`);
  }
}

/** Decodes one relay message. DATA payloads are views of `input`, not copies. */
export function decodeFrame(input: Uint8Array): DecodeResult {
  // Transports are typed, but a relay client bug must still end in a clean close.
  if (!((input as unknown) instanceof Uint8Array)) {
    return { ok: false, error: new TunnelError("ProtocolError", "relay message is not binary data") };
  }
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < HEADER_SIZE) {
    return {
      ok: false,
      error: new TunnelError("FrameCorrupt", `frame of ${buf.length} bytes is shorter than a header`),
    };
  }
  if (crc32(buf.subarray(4)) !== buf.readUInt32BE(0)) {
    return {
      ok: false,
      error: new TunnelError("FrameCorrupt", "frame checksum mismatch (corrupt or truncated)"),
    };
  }
  try {
    const frame = decodeBody(
      buf.readUInt8(4),
      buf.readUInt8(5),
      buf.readUInt32BE(10),
      buf.subarray(HEADER_SIZE),
    );
    return { ok: true, seq: buf.readUInt32BE(6), frame };
  } catch (err) {
    const message = err instanceof Malformed ? err.message : `undecodable frame: ${String(err)}`;
    return { ok: false, error: new TunnelError("ProtocolError", message) };
  }
}

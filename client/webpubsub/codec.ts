/**
 * The one codec for the `protobuf.webpubsub.azure.v1` client protocol, shared by the emulator
 * (server side) and the tunnel's relay client (client side). Schema: the official emulator's
 * `webpubsub.client.proto` (see docs/webpubsub-protocol.md §2).
 *
 * Decoding yields binary payloads as views into the received frame, and `encodeGroupBinaryData`
 * builds a downstream DataMessage around such a view with a single copy, so relaying a binary
 * message between two protobuf clients never goes through an object model.
 */
import protobuf from "protobufjs";

export const PROTOBUF_SUBPROTOCOL = "protobuf.webpubsub.azure.v1";
export const PROTOBUF_RELIABLE_SUBPROTOCOL = "protobuf.reliable.webpubsub.azure.v1";

const SCHEMA = `
syntax = "proto3";
package azure.webpubsub.v1;

message UpstreamMessage {
  oneof message {
    SendToGroupMessage send_to_group_message = 1;
    EventMessage event_message = 5;
    JoinGroupMessage join_group_message = 6;
    LeaveGroupMessage leave_group_message = 7;
    SequenceAckMessage sequence_ack_message = 8;
    PingMessage ping_message = 9;
  }
  message SendToGroupMessage { string group = 1; optional uint64 ack_id = 2; MessageData data = 3; optional bool no_echo = 4; }
  message EventMessage { string event = 1; MessageData data = 2; optional uint64 ack_id = 3; }
  message JoinGroupMessage { string group = 1; optional uint64 ack_id = 2; }
  message LeaveGroupMessage { string group = 1; optional uint64 ack_id = 2; }
  message SequenceAckMessage { uint64 sequence_id = 1; }
  message PingMessage {}
}

message DownstreamMessage {
  oneof message {
    AckMessage ack_message = 1;
    DataMessage data_message = 2;
    SystemMessage system_message = 3;
    PongMessage pong_message = 4;
  }
  message AckMessage { uint64 ack_id = 1; bool success = 2; optional ErrorMessage error = 3;
    message ErrorMessage { string name = 1; string message = 2; } }
  message DataMessage { string from = 1; optional string group = 2; MessageData data = 3; optional uint64 sequence_id = 4; }
  message SystemMessage {
    oneof message { ConnectedMessage connected_message = 1; DisconnectedMessage disconnected_message = 2; }
    message ConnectedMessage { string connection_id = 1; string user_id = 2; optional string reconnection_token = 3; }
    message DisconnectedMessage { string reason = 2; }
  }
  message PongMessage {}
}

message MessageData {
  oneof data { string text_data = 1; bytes binary_data = 2; Any protobuf_data = 3; string json_data = 4; }
}

// google.protobuf.Any, inlined so the schema needs no import resolution; identical on the wire.
message Any { string type_url = 1; bytes value = 2; }
`;

/** Payload of a message; binary and protobuf values are views into the frame they came from. */
export type MessageData =
  | { kind: "text"; text: string }
  | { kind: "json"; json: string }
  | { kind: "binary"; bytes: Uint8Array }
  | { kind: "protobuf"; typeUrl: string; value: Uint8Array };

export type UpstreamMessage =
  | { type: "sendToGroup"; group: string; ackId?: number; data?: MessageData; noEcho?: boolean }
  | { type: "event"; event: string; ackId?: number; data?: MessageData }
  | { type: "joinGroup"; group: string; ackId?: number }
  | { type: "leaveGroup"; group: string; ackId?: number }
  | { type: "sequenceAck"; sequenceId: number }
  | { type: "ping" };

export interface AckError {
  name: string;
  message: string;
}

export type DownstreamMessage =
  | { type: "ack"; ackId: number; success: boolean; error?: AckError }
  | { type: "message"; from: string; group?: string; data?: MessageData; sequenceId?: number }
  | { type: "connected"; connectionId: string; userId: string; reconnectionToken?: string }
  | { type: "disconnected"; reason: string }
  | { type: "pong" };

/** Thrown for frames that are not valid messages of this protocol. */
export class ProtocolDecodeError extends Error {
  override readonly name = "ProtocolDecodeError";
}

interface Types {
  upstream: protobuf.Type;
  downstream: protobuf.Type;
}
let types: Types | undefined;

// Parsed on first use rather than at import time: importing the codec has no side effects.
function schema(): Types {
  if (!types) {
    const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
    types = {
      upstream: root.lookupType("azure.webpubsub.v1.UpstreamMessage"),
      downstream: root.lookupType("azure.webpubsub.v1.DownstreamMessage"),
    };
  }
  return types;
}

type Raw = Record<string, unknown>;

// Decoded messages carry proto3 defaults on their prototype; only own properties were on the wire.
function own(obj: Raw, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function toNumber(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number") return v;
  if (typeof v === "object" && "toNumber" in v && typeof v.toNumber === "function") {
    return (v as { toNumber(): number }).toNumber();
  }
  return Number(v);
}

function readData(raw: unknown): MessageData | undefined {
  if (!raw || typeof raw !== "object") return undefined;
  const d = raw as Raw;
  const text = own(d, "text_data");
  if (typeof text === "string") return { kind: "text", text };
  const binary = own(d, "binary_data");
  if (binary instanceof Uint8Array) return { kind: "binary", bytes: binary };
  const json = own(d, "json_data");
  if (typeof json === "string") return { kind: "json", json };
  const any = own(d, "protobuf_data");
  if (any && typeof any === "object") {
    const typeUrl = own(any as Raw, "type_url");
    const value = own(any as Raw, "value");
    return {
      kind: "protobuf",
      typeUrl: typeof typeUrl === "string" ? typeUrl : "",
      value: value instanceof Uint8Array ? value : new Uint8Array(0),
    };
  }
  return undefined;
}

function writeData(data: MessageData | undefined): Raw | undefined {
  if (!data) return undefined;
  switch (data.kind) {
    case "text":
      return { text_data: data.text };
    case "json":
      return { json_data: data.json };
    case "binary":
      return { binary_data: data.bytes };
    case "protobuf":
      return { protobuf_data: { type_url: data.typeUrl, value: data.value } };
  }
}

function decodeRaw(type: protobuf.Type, frame: Uint8Array): Raw {
  try {
    return type.decode(frame);
  } catch (err) {
    throw new ProtocolDecodeError(
      `invalid ${type.name}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

function withAck<T extends object>(msg: T, ackId: unknown): T & { ackId?: number } {
  const n = toNumber(ackId);
  return n === undefined ? msg : { ...msg, ackId: n };
}

export function decodeUpstream(frame: Uint8Array): UpstreamMessage {
  const raw = decodeRaw(schema().upstream, frame);
  const s = own(raw, "send_to_group_message") as Raw | undefined;
  if (s) {
    const msg: UpstreamMessage = withAck(
      { type: "sendToGroup" as const, group: str(s.group) },
      own(s, "ack_id"),
    );
    const data = readData(own(s, "data"));
    if (data) msg.data = data;
    const noEcho = own(s, "no_echo");
    if (typeof noEcho === "boolean") msg.noEcho = noEcho;
    return msg;
  }
  const e = own(raw, "event_message") as Raw | undefined;
  if (e) {
    const msg: UpstreamMessage = withAck({ type: "event" as const, event: str(e.event) }, own(e, "ack_id"));
    const data = readData(own(e, "data"));
    if (data) msg.data = data;
    return msg;
  }
  const j = own(raw, "join_group_message") as Raw | undefined;
  if (j) return withAck({ type: "joinGroup" as const, group: str(j.group) }, own(j, "ack_id"));
  const l = own(raw, "leave_group_message") as Raw | undefined;
  if (l) return withAck({ type: "leaveGroup" as const, group: str(l.group) }, own(l, "ack_id"));
  const q = own(raw, "sequence_ack_message") as Raw | undefined;
  if (q) return { type: "sequenceAck", sequenceId: toNumber(q.sequence_id) ?? 0 };
  if (own(raw, "ping_message")) return { type: "ping" };
  throw new ProtocolDecodeError("UpstreamMessage carries no known message");
}

export function encodeUpstream(msg: UpstreamMessage): Uint8Array {
  if (msg.type === "sendToGroup" && msg.data?.kind === "binary") {
    return encodeSendToGroupBinary(msg.group, msg.data.bytes, msg.noEcho, msg.ackId);
  }
  let raw: Raw;
  switch (msg.type) {
    case "sendToGroup":
      raw = {
        send_to_group_message: {
          group: msg.group,
          ack_id: msg.ackId,
          data: writeData(msg.data),
          no_echo: msg.noEcho,
        },
      };
      break;
    case "event":
      raw = { event_message: { event: msg.event, ack_id: msg.ackId, data: writeData(msg.data) } };
      break;
    case "joinGroup":
      raw = { join_group_message: { group: msg.group, ack_id: msg.ackId } };
      break;
    case "leaveGroup":
      raw = { leave_group_message: { group: msg.group, ack_id: msg.ackId } };
      break;
    case "sequenceAck":
      raw = { sequence_ack_message: { sequence_id: msg.sequenceId } };
      break;
    case "ping":
      raw = { ping_message: {} };
      break;
  }
  const t = schema().upstream;
  return t.encode(t.fromObject(raw)).finish();
}

export function decodeDownstream(frame: Uint8Array): DownstreamMessage {
  const fast = Buffer.isBuffer(frame) ? decodeGroupBinaryData(frame) : undefined;
  if (fast) return fast;
  const raw = decodeRaw(schema().downstream, frame);
  const a = own(raw, "ack_message") as Raw | undefined;
  if (a) {
    const msg: DownstreamMessage = {
      type: "ack",
      ackId: toNumber(a.ack_id) ?? 0,
      success: a.success === true,
    };
    const err = own(a, "error") as Raw | undefined;
    if (err) msg.error = { name: str(err.name), message: str(err.message) };
    return msg;
  }
  const d = own(raw, "data_message") as Raw | undefined;
  if (d) {
    const msg: DownstreamMessage = { type: "message", from: str(d.from) };
    const group = own(d, "group");
    if (typeof group === "string") msg.group = group;
    const data = readData(own(d, "data"));
    if (data) msg.data = data;
    const seq = toNumber(own(d, "sequence_id"));
    if (seq !== undefined) msg.sequenceId = seq;
    return msg;
  }
  const s = own(raw, "system_message") as Raw | undefined;
  if (s) {
    const c = own(s, "connected_message") as Raw | undefined;
    if (c) {
      const msg: DownstreamMessage = {
        type: "connected",
        connectionId: str(c.connection_id),
        userId: str(c.user_id),
      };
      const token = own(c, "reconnection_token");
      if (typeof token === "string") msg.reconnectionToken = token;
      return msg;
    }
    const dc = own(s, "disconnected_message") as Raw | undefined;
    if (dc) return { type: "disconnected", reason: str(dc.reason) };
  }
  if (own(raw, "pong_message")) return { type: "pong" };
  throw new ProtocolDecodeError("DownstreamMessage carries no known message");
}

export function encodeDownstream(msg: DownstreamMessage): Uint8Array {
  if (msg.type === "message" && msg.data?.kind === "binary") {
    return encodeGroupBinaryData(msg.from, msg.group, msg.data.bytes, msg.sequenceId);
  }
  let raw: Raw;
  switch (msg.type) {
    case "ack":
      raw = { ack_message: { ack_id: msg.ackId, success: msg.success, error: msg.error } };
      break;
    case "message":
      raw = {
        data_message: {
          from: msg.from,
          group: msg.group,
          data: writeData(msg.data),
          sequence_id: msg.sequenceId,
        },
      };
      break;
    case "connected":
      raw = {
        system_message: {
          connected_message: {
            connection_id: msg.connectionId,
            user_id: msg.userId,
            reconnection_token: msg.reconnectionToken,
          },
        },
      };
      break;
    case "disconnected":
      raw = { system_message: { disconnected_message: { reason: msg.reason } } };
      break;
    case "pong":
      raw = { pong_message: {} };
      break;
  }
  const t = schema().downstream;
  return t.encode(t.fromObject(raw)).finish();
}

// ---- fast path: DownstreamMessage{data_message{from, group?, data{binary_data}, sequence_id?}} ----

/** A varint of at most 7 bytes (below 2^49, exact as a number) at `pos`, or undefined. */
function readVarint(buf: Buffer, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = 0, scale = 1; i < 7 && pos + i < buf.length; i++, scale *= 128) {
    const byte = buf[pos + i]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return { value, next: pos + i + 1 };
  }
  return undefined;
}

/** A length-delimited field's bounds at `pos`, or undefined if it overruns `end`. */
function readLength(buf: Buffer, pos: number, end: number): { start: number; end: number } | undefined {
  const len = readVarint(buf, pos);
  if (!len || len.next + len.value > end) return undefined;
  return { start: len.next, end: len.next + len.value };
}

/** An ASCII string field, or undefined: anything else is left to protobufjs and its UTF-8 rules. */
function asciiField(buf: Buffer, start: number, end: number): string | undefined {
  for (let i = start; i < end; i++) if (buf[i]! >= 0x80) return undefined;
  return buf.toString("latin1", start, end);
}

/**
 * Decodes the one message of the data path, a group's binary data, without protobufjs: no
 * reflective walk and no object per field for every tunnel frame the device receives. It takes only
 * the plain shape (each field at most once, in any order, ASCII strings, one binary_data) and returns
 * undefined for anything else, which then goes through protobufjs: the result is the same either way.
 */
export function decodeGroupBinaryData(buf: Buffer): DownstreamMessage | undefined {
  if (buf[0] !== 0x12) return undefined; // DownstreamMessage.data_message
  const outer = readLength(buf, 1, buf.length);
  if (!outer || outer.end !== buf.length) return undefined;
  let from: string | undefined;
  let group: string | undefined;
  let sequenceId: number | undefined;
  let bytes: Buffer | undefined;
  for (let pos = outer.start; pos < outer.end;) {
    const tag = buf[pos++];
    if (tag === 0x20) {
      // sequence_id
      const seq = sequenceId === undefined ? readVarint(buf, pos) : undefined;
      if (!seq || seq.next > outer.end) return undefined;
      sequenceId = seq.value;
      pos = seq.next;
      continue;
    }
    const field = readLength(buf, pos, outer.end);
    if (!field) return undefined;
    pos = field.end;
    if (tag === 0x0a && from === undefined) from = asciiField(buf, field.start, field.end);
    else if (tag === 0x12 && group === undefined) group = asciiField(buf, field.start, field.end);
    else if (tag === 0x1a && bytes === undefined) {
      // MessageData holding exactly one binary_data
      if (buf[field.start] !== 0x12) return undefined;
      const data = readLength(buf, field.start + 1, field.end);
      if (!data || data.end !== field.end) return undefined;
      bytes = buf.subarray(data.start, data.end);
      continue;
    } else return undefined;
    if ((tag === 0x0a && from === undefined) || (tag === 0x12 && group === undefined)) return undefined;
  }
  if (!bytes) return undefined;
  const msg: DownstreamMessage = { type: "message", from: from ?? "" };
  if (group !== undefined) msg.group = group;
  msg.data = { kind: "binary", bytes };
  if (sequenceId !== undefined) msg.sequenceId = sequenceId;
  return msg;
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/**
 * The bytes of a downstream binary DataMessage that precede its payload: `prefix + payload` is the
 * whole DownstreamMessage. This is the relay's data path: the payload is never copied or re-encoded,
 * the caller sends the prefix and the payload view one after the other. `sequence_id` is written
 * before `data` (protobuf parsers accept fields in any order) so that the payload comes last.
 */
export function encodeGroupBinaryDataPrefix(
  from: string,
  group: string | undefined,
  payloadLength: number,
  sequenceId?: number,
): Buffer {
  const fromLen = Buffer.byteLength(from);
  const groupLen = group === undefined ? 0 : Buffer.byteLength(group);
  // MessageData { bytes binary_data = 2 }
  const dataLen = 1 + varintLength(payloadLength) + payloadLength;
  // DataMessage { from = 1; group = 2; sequence_id = 4; data = 3 }
  let inner = 0;
  if (fromLen > 0) inner += 1 + varintLength(fromLen) + fromLen;
  if (group !== undefined) inner += 1 + varintLength(groupLen) + groupLen;
  if (sequenceId !== undefined) inner += 1 + varintLength(sequenceId);
  inner += 1 + varintLength(dataLen) + dataLen;
  // DownstreamMessage { data_message = 2 }
  const prefixLen = 1 + varintLength(inner) + inner - payloadLength;
  const buf = Buffer.allocUnsafe(prefixLen);
  let p = 0;
  buf[p++] = 0x12;
  p = writeVarint(buf, p, inner);
  if (fromLen > 0) {
    buf[p++] = 0x0a;
    p = writeVarint(buf, p, fromLen);
    p += buf.write(from, p);
  }
  if (group !== undefined) {
    buf[p++] = 0x12;
    p = writeVarint(buf, p, groupLen);
    p += buf.write(group, p);
  }
  if (sequenceId !== undefined) {
    buf[p++] = 0x20;
    p = writeVarint(buf, p, sequenceId);
  }
  buf[p++] = 0x1a;
  p = writeVarint(buf, p, dataLen);
  buf[p++] = 0x12;
  writeVarint(buf, p, payloadLength);
  return buf;
}

/** A downstream binary DataMessage as one buffer: the prefix and one copy of the payload. */
export function encodeGroupBinaryData(
  from: string,
  group: string | undefined,
  payload: Uint8Array,
  sequenceId?: number,
): Buffer {
  return Buffer.concat([encodeGroupBinaryDataPrefix(from, group, payload.length, sequenceId), payload]);
}

/**
 * An upstream binary SendToGroupMessage: the sender's side of the data path, where every tunnel
 * frame passes. Written by hand like the downstream one, so a frame costs one allocation and one
 * copy instead of a reflective object walk. `no_echo` precedes `data` so the payload comes last.
 */
export function encodeSendToGroupBinary(
  group: string,
  payload: Uint8Array,
  noEcho?: boolean,
  ackId?: number,
): Buffer {
  const groupLen = Buffer.byteLength(group);
  // MessageData { bytes binary_data = 2 }
  const dataLen = 1 + varintLength(payload.length) + payload.length;
  // SendToGroupMessage { group = 1; ack_id = 2; no_echo = 4; data = 3 }
  let inner = 1 + varintLength(groupLen) + groupLen;
  if (ackId !== undefined) inner += 1 + varintLength(ackId);
  if (noEcho !== undefined) inner += 2;
  inner += 1 + varintLength(dataLen) + dataLen;
  // UpstreamMessage { send_to_group_message = 1 }
  const buf = Buffer.allocUnsafe(1 + varintLength(inner) + inner);
  let p = 0;
  buf[p++] = 0x0a;
  p = writeVarint(buf, p, inner);
  buf[p++] = 0x0a;
  p = writeVarint(buf, p, groupLen);
  p += buf.write(group, p);
  if (ackId !== undefined) {
    buf[p++] = 0x10;
    p = writeVarint(buf, p, ackId);
  }
  if (noEcho !== undefined) {
    buf[p++] = 0x20;
    buf[p++] = noEcho ? 1 : 0;
  }
  buf[p++] = 0x1a;
  p = writeVarint(buf, p, dataLen);
  buf[p++] = 0x12;
  p = writeVarint(buf, p, payload.length);
  buf.set(payload, p);
  return buf;
}

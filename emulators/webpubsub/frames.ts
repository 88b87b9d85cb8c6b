/**
 * What travels on a client socket, per subprotocol. Upstream frames become the shared codec's
 * UpstreamMessage whatever the protocol; downstream messages are rendered once per protocol and
 * shared by every recipient that needs no per-connection sequence id.
 */
import {
  encodeDownstream,
  encodeGroupBinaryData,
  PROTOBUF_RELIABLE_SUBPROTOCOL,
  PROTOBUF_SUBPROTOCOL,
  type DownstreamMessage,
  type MessageData,
  type UpstreamMessage,
} from "../../client/webpubsub/codec";

export const JSON_SUBPROTOCOL = "json.webpubsub.azure.v1";
export const JSON_RELIABLE_SUBPROTOCOL = "json.reliable.webpubsub.azure.v1";

export type ProtocolKind = "json" | "protobuf" | "simple";

export interface Protocol {
  kind: ProtocolKind;
  reliable: boolean;
}

const KNOWN: Record<string, Protocol> = {
  [JSON_SUBPROTOCOL]: { kind: "json", reliable: false },
  [JSON_RELIABLE_SUBPROTOCOL]: { kind: "json", reliable: true },
  [PROTOBUF_SUBPROTOCOL]: { kind: "protobuf", reliable: false },
  [PROTOBUF_RELIABLE_SUBPROTOCOL]: { kind: "protobuf", reliable: true },
};

export function isKnownSubprotocol(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(KNOWN, name);
}

export function protocolFor(subprotocol: string | undefined): Protocol {
  return (subprotocol !== undefined && KNOWN[subprotocol]) || { kind: "simple", reliable: false };
}

export interface Frame {
  data: Buffer | string;
  binary: boolean;
}

export function frameBytes(frame: Frame): number {
  return typeof frame.data === "string" ? Buffer.byteLength(frame.data) : frame.data.length;
}

const DATA_TYPES = new Set(["json", "text", "binary", "protobuf"]);

function dataTypeOf(data: MessageData): string {
  return data.kind;
}

/** A protobuf `Any` serialised, for JSON clients that receive protobuf data (base64). */
function anyBytes(typeUrl: string, value: Uint8Array): Buffer {
  const url = Buffer.from(typeUrl);
  const parts: Buffer[] = [];
  const varint = (n: number): Buffer => {
    const out: number[] = [];
    while (n >= 0x80) {
      out.push((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    out.push(n);
    return Buffer.from(out);
  };
  if (url.length > 0) parts.push(Buffer.from([0x0a]), varint(url.length), url);
  if (value.length > 0) parts.push(Buffer.from([0x12]), varint(value.length), Buffer.from(value));
  return Buffer.concat(parts);
}

function jsonData(data: MessageData): string {
  switch (data.kind) {
    case "json":
      return data.json;
    case "text":
      return JSON.stringify(data.text);
    case "binary":
      return JSON.stringify(
        Buffer.from(data.bytes.buffer, data.bytes.byteOffset, data.bytes.length).toString("base64"),
      );
    case "protobuf":
      return JSON.stringify(anyBytes(data.typeUrl, data.value).toString("base64"));
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** A data message to one or many connections: group, hub, user or connection sends. */
export class OutboundMessage {
  private readonly cache: Partial<Record<ProtocolKind, Frame>> = {};

  constructor(
    readonly from: "group" | "server",
    readonly data: MessageData,
    readonly group?: string,
    readonly fromUserId?: string,
  ) {}

  frame(kind: ProtocolKind, sequenceId?: number): Frame {
    if (sequenceId === undefined) {
      const cached = this.cache[kind];
      if (cached) return cached;
    }
    const frame = this.render(kind, sequenceId);
    if (sequenceId === undefined) this.cache[kind] = frame;
    return frame;
  }

  private render(kind: ProtocolKind, sequenceId: number | undefined): Frame {
    const d = this.data;
    if (kind === "simple") {
      if (d.kind === "text") return { data: d.text, binary: false };
      if (d.kind === "json") return { data: d.json, binary: false };
      return { data: toBuffer(d.kind === "binary" ? d.bytes : d.value), binary: true };
    }
    if (kind === "protobuf") {
      // One WebSocket frame per message, as a server that writes whole messages sends it. Sent as
      // a prefix and the payload in two fragments, it saved the relay one copy but cost every
      // receiver one (ws joins fragments into a new buffer) plus a second frame to parse: the
      // device's CPU, which is what the tunnel is measured by (docs/performance.md).
      if (d.kind === "binary") {
        return { data: encodeGroupBinaryData(this.from, this.group, d.bytes, sequenceId), binary: true };
      }
      const msg: DownstreamMessage = { type: "message", from: this.from, data: d };
      if (this.group !== undefined) msg.group = this.group;
      if (sequenceId !== undefined) msg.sequenceId = sequenceId;
      return { data: toBuffer(encodeDownstream(msg)), binary: true };
    }
    let s = `{"type":"message","from":"${this.from}"`;
    if (this.group !== undefined) s += `,"group":${JSON.stringify(this.group)}`;
    if (this.from === "group" && this.fromUserId !== undefined)
      s += `,"fromUserId":${JSON.stringify(this.fromUserId)}`;
    s += `,"dataType":"${dataTypeOf(d)}","data":${jsonData(d)}`;
    if (sequenceId !== undefined) s += `,"sequenceId":${sequenceId}`;
    return { data: s + "}", binary: false };
  }
}

/** Non-data downstream messages (ack, system, pong) for JSON or protobuf clients. */
export function controlFrame(
  kind: ProtocolKind,
  msg: Exclude<DownstreamMessage, { type: "message" }>,
): Frame | undefined {
  if (kind === "simple") return undefined;
  if (kind === "protobuf") return { data: toBuffer(encodeDownstream(msg)), binary: true };
  let obj: Record<string, unknown>;
  switch (msg.type) {
    case "ack":
      obj = { type: "ack", ackId: msg.ackId, success: msg.success };
      if (msg.error) obj.error = msg.error;
      break;
    case "connected":
      obj = {
        type: "system",
        event: "connected",
        userId: msg.userId || null,
        connectionId: msg.connectionId,
      };
      if (msg.reconnectionToken !== undefined) obj.reconnectionToken = msg.reconnectionToken;
      break;
    case "disconnected":
      obj = { type: "system", event: "disconnected", message: msg.reason };
      break;
    case "pong":
      obj = { type: "pong" };
      break;
  }
  return { data: JSON.stringify(obj), binary: false };
}

/** A JSON upstream frame that is valid JSON but not a valid message. */
export interface InvalidMessage {
  invalid: string;
  ackId?: number;
}

function optionalAckId(v: unknown): number | undefined | null {
  if (v === undefined || v === null) return undefined;
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

function parseJsonData(obj: Record<string, unknown>): MessageData | string {
  const dataType = obj.dataType ?? "json";
  if (typeof dataType !== "string" || !DATA_TYPES.has(dataType))
    return `unsupported dataType ${JSON.stringify(dataType)}`;
  const data = obj.data;
  switch (dataType) {
    case "json":
      return { kind: "json", json: data === undefined ? "null" : JSON.stringify(data) };
    case "text":
      return typeof data === "string" ? { kind: "text", text: data } : "text data must be a string";
    default:
      // binary and protobuf travel as base64; protobuf is kept opaque as the serialised Any.
      if (typeof data !== "string") return `${dataType} data must be a base64 string`;
      return dataType === "binary"
        ? { kind: "binary", bytes: Buffer.from(data, "base64") }
        : { kind: "protobuf", typeUrl: "", value: Buffer.from(data, "base64") };
  }
}

/** Maps a parsed JSON object to an UpstreamMessage, or says why it is not one. */
export function parseJsonUpstream(value: unknown): UpstreamMessage | InvalidMessage {
  if (!value || typeof value !== "object" || Array.isArray(value))
    return { invalid: "message must be a JSON object" };
  const obj = value as Record<string, unknown>;
  const ackId = optionalAckId(obj.ackId);
  if (ackId === null) return { invalid: "ackId must be a non-negative integer" };
  const bad = (invalid: string): InvalidMessage => (ackId === undefined ? { invalid } : { invalid, ackId });
  const withAck = <T extends object>(m: T): T & { ackId?: number } =>
    ackId === undefined ? m : { ...m, ackId };
  switch (obj.type) {
    case "joinGroup":
    case "leaveGroup":
      if (typeof obj.group !== "string") return bad("group must be a string");
      return withAck({ type: obj.type, group: obj.group });
    case "sendToGroup": {
      if (typeof obj.group !== "string") return bad("group must be a string");
      if (obj.noEcho !== undefined && typeof obj.noEcho !== "boolean") return bad("noEcho must be a boolean");
      const data = parseJsonData(obj);
      if (typeof data === "string") return bad(data);
      const msg = withAck({ type: "sendToGroup" as const, group: obj.group, data });
      return obj.noEcho === true ? { ...msg, noEcho: true } : msg;
    }
    case "event": {
      if (typeof obj.event !== "string" || obj.event.length === 0)
        return bad("event must be a non-empty string");
      const data = parseJsonData(obj);
      if (typeof data === "string") return bad(data);
      return withAck({ type: "event" as const, event: obj.event, data });
    }
    case "sequenceAck":
      if (typeof obj.sequenceId !== "number" || !Number.isSafeInteger(obj.sequenceId) || obj.sequenceId < 0) {
        return bad("sequenceId must be a non-negative integer");
      }
      return { type: "sequenceAck", sequenceId: obj.sequenceId };
    case "ping":
      return { type: "ping" };
    default:
      return bad(`unknown message type ${JSON.stringify(obj.type)}`);
  }
}

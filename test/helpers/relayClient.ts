/**
 * A bare Web PubSub protobuf client, enough for tests that check the control plane's handling of
 * relay connections: connect with a Bearer token, send binary to the group, see what arrives.
 */
import { once } from "node:events";
import WebSocket from "ws";
import { PROTOBUF_SUBPROTOCOL, decodeDownstream, encodeUpstream } from "../../client/webpubsub";
import { Recorder, deferred, withDeadline } from "./events";

export interface RelayTestClient {
  ws: WebSocket;
  connectionId: string;
  received: Recorder<Buffer>;
  closed: Promise<{ code: number; reason: string }>;
  send(group: string, bytes: Uint8Array): void;
  close(): Promise<void>;
}

/** Resolves once the relay said `connected`; rejects with the HTTP status when the upgrade is refused. */
export async function connectRelay(url: string, token: string): Promise<RelayTestClient> {
  const ws = new WebSocket(url, PROTOBUF_SUBPROTOCOL, { headers: { authorization: `Bearer ${token}` } });
  const received = new Recorder<Buffer>();
  const connected = deferred<string>();
  const closed = deferred<{ code: number; reason: string }>();
  ws.on("message", (data: Buffer) => {
    const msg = decodeDownstream(data);
    if (msg.type === "connected") connected.resolve(msg.connectionId);
    if (msg.type === "message" && msg.data?.kind === "binary") received.push(Buffer.from(msg.data.bytes));
  });
  ws.on("unexpected-response", (_req, res) =>
    connected.reject(new Error(`upgrade refused: ${res.statusCode}`)),
  );
  ws.on("error", (err) => connected.reject(err));
  ws.on("close", (code, reason) => {
    connected.reject(new Error(`closed before connected: ${code}`));
    closed.resolve({ code, reason: reason.toString() });
  });
  const connectionId = await withDeadline(connected.promise, 10_000, "relay connected");
  return {
    ws,
    connectionId,
    received,
    closed: closed.promise,
    send: (group, bytes) =>
      ws.send(encodeUpstream({ type: "sendToGroup", group, noEcho: true, data: { kind: "binary", bytes } })),
    close: async () => {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.close();
      await once(ws, "close");
    },
  };
}

/**
 * MQTT over WebSockets, as `MqttWs` dials it: `wss://<host>:443/$iothub/websocket` with the
 * subprotocol "mqtt" and no other headers. Served on the REST port's HTTPS server (same
 * certificate); each WebSocket becomes a byte stream handed to the gateway, which authenticates it
 * exactly like a connection on the MQTT/TLS port.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, createWebSocketStream } from "ws";
import type { EmulatorLog } from "../log";

export const MQTT_WS_PATH = "/$iothub/websocket";
export const MQTT_WS_SUBPROTOCOL = "mqtt";

/** A WebSocket message never needs to be larger than an MQTT packet; IoT Hub's are at most 256 KB. */
const MAX_MESSAGE_BYTES = 1024 * 1024;

function refuse(socket: Duplex, status: string): void {
  socket.on("error", () => undefined);
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function subprotocols(req: IncomingMessage): string[] {
  return (req.headers["sec-websocket-protocol"] ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

export class MqttWebSocketEndpoint {
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_MESSAGE_BYTES,
    handleProtocols: (offered) => (offered.has(MQTT_WS_SUBPROTOCOL) ? MQTT_WS_SUBPROTOCOL : false),
  });

  constructor(
    private readonly accept: (stream: Duplex, peer: string) => void,
    private readonly log: EmulatorLog,
  ) {}

  /** For the HTTPS server's 'upgrade' event: anything but an MQTT WebSocket is refused. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const peer = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`;
    const path = (req.url ?? "").split("?")[0];
    if (path !== MQTT_WS_PATH) {
      this.log(`https upgrade refused from ${peer}: only ${MQTT_WS_PATH} accepts WebSockets`);
      refuse(socket, "404 Not Found");
      return;
    }
    if (!subprotocols(req).includes(MQTT_WS_SUBPROTOCOL)) {
      this.log(`mqtt websocket refused from ${peer}: the subprotocol must be '${MQTT_WS_SUBPROTOCOL}'`);
      refuse(socket, "400 Bad Request");
      return;
    }
    // handleUpgrade answers malformed handshakes (bad key, version) itself.
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws);
      // The gateway sees the stream's errors through aedes; this only keeps them from being unhandled.
      stream.on("error", () => undefined);
      this.accept(stream, `${peer} (websocket)`);
    });
  }

  /** Ends every open WebSocket: upgraded sockets are no longer the HTTPS server's to close. */
  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

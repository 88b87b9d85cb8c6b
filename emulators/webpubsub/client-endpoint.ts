/**
 * `/client/hubs/{hub}`: token check and the blocking `connect` event before the upgrade (so a
 * refusal is an HTTP status, as on the service), then framing per subprotocol, reliable recovery,
 * and the mapping of socket events to the service.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { STATUS_CODES } from "node:http";
import WebSocket, { WebSocketServer } from "ws";
import { decodeUpstream, ProtocolDecodeError } from "../../client/webpubsub/codec";
import { ClientConnection } from "./connection";
import type { ConnectRequest } from "./events";
import { isKnownSubprotocol, parseJsonUpstream, protocolFor } from "./frames";
import { JwtError, verifyHs256, type JwtClaims } from "./jwt";
import { isValidHubName, MAX_FRAME_BYTES, type ResolvedOptions } from "./options";
import { isValidGroupName, type WebPubSubService } from "./service";

interface Upgrade {
  hub: string;
  url: URL;
}

function reject(socket: Duplex, status: number, body: string): void {
  if (socket.destroyed) return;
  const text = Buffer.from(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\nConnection: close\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${text.length}\r\n\r\n${body}`,
  );
  socket.destroy();
}

function stringList(v: unknown): string[] | undefined {
  if (v === undefined) return [];
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v;
  return undefined;
}

function multi(entries: Iterable<[string, string]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of entries) (out[k] ??= []).push(v);
  return out;
}

function claimsForEvent(claims: JwtClaims): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(claims)) {
    out[k] = (Array.isArray(v) ? v : [v]).map((x) => (typeof x === "string" ? x : JSON.stringify(x)));
  }
  return out;
}

export class ClientEndpoint {
  private readonly wss: WebSocketServer;
  /** Subprotocol chosen before the upgrade, read back by ws's handleProtocols. */
  private readonly chosen = new WeakMap<IncomingMessage, string | false>();

  constructor(
    private readonly options: ResolvedOptions,
    private readonly service: WebPubSubService,
    private readonly endpoint: () => string,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (_protocols, req) => this.chosen.get(req) ?? false,
    });
  }

  /** Parses `/client/hubs/{hub}` or `/client/?hub=`; undefined when the path is not ours. */
  static route(req: IncomingMessage): Upgrade | undefined | "bad-hub" {
    const url = new URL(req.url ?? "/", "http://localhost");
    let hub: string | null;
    const m = /^\/client\/hubs\/([^/]+)\/?$/.exec(url.pathname);
    if (m) {
      try {
        hub = decodeURIComponent(m[1]!);
      } catch {
        return "bad-hub";
      }
    } else if (url.pathname === "/client" || url.pathname === "/client/") hub = url.searchParams.get("hub");
    else return undefined;
    if (hub === null || !isValidHubName(hub)) return "bad-hub";
    return { hub: hub.toLowerCase(), url };
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Until ws owns the socket, a client that vanishes must not raise an unhandled error.
    const onError = (): void => undefined;
    socket.on("error", onError);
    void this.upgrade(req, socket, head)
      .catch((err: unknown) => {
        this.options.log(`upgrade failed: ${err instanceof Error ? err.message : String(err)}`);
        reject(socket, 500, "Internal error.");
      })
      .finally(() => socket.off("error", onError));
  }

  private requestedProtocols(req: IncomingMessage): string[] {
    return String(req.headers["sec-websocket-protocol"] ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // Checked before the connect event, so that an accepted connect is always followed by an upgrade
    // (ws would otherwise refuse these after the handler had said yes).
    const key = req.headers["sec-websocket-key"];
    const version = req.headers["sec-websocket-version"];
    if (
      req.method !== "GET" ||
      String(req.headers.upgrade).toLowerCase() !== "websocket" ||
      typeof key !== "string" ||
      !/^[+/0-9A-Za-z]{22}==$/.test(key) ||
      (version !== "13" && version !== "8")
    ) {
      return reject(socket, 400, "Not a valid WebSocket upgrade request.");
    }
    const route = ClientEndpoint.route(req);
    if (route === undefined) return reject(socket, 404, "Not found.");
    if (route === "bad-hub") return reject(socket, 400, "Invalid hub name.");
    const { hub, url } = route;
    const recoverId = url.searchParams.get("awps_connection_id");
    const recoverToken = url.searchParams.get("awps_reconnection_token");
    if (recoverId !== null && recoverToken !== null)
      return this.recover(req, socket, head, hub, recoverId, recoverToken);

    const claims = this.authenticate(req, hub, url);
    if (typeof claims === "string") return reject(socket, 401, claims);
    const roles = stringList(claims.role);
    const groups = stringList(claims["webpubsub.group"]);
    if (!roles || !groups || !groups.every(isValidGroupName)) {
      return reject(socket, 400, "Invalid role or webpubsub.group claim.");
    }
    const requested = this.requestedProtocols(req);
    const connectionId = ClientConnection.newId();
    let userId = typeof claims.sub === "string" && claims.sub.length > 0 ? claims.sub : undefined;
    let subprotocol = requested.find(isKnownSubprotocol);

    const request: ConnectRequest = {
      claims: claimsForEvent(claims),
      query: multi([...url.searchParams].filter(([k]) => k !== "access_token")),
      headers: multi(
        Object.entries(req.headers).flatMap(([k, v]) =>
          k === "authorization" || v === undefined
            ? []
            : (Array.isArray(v) ? v : [v]).map((x): [string, string] => [k, x]),
        ),
      ),
      subprotocols: requested,
    };
    const result = await this.service.events.connect({ hub, connectionId, userId, subprotocol }, request);
    if (!result.accepted) return reject(socket, result.status, result.body);
    if (result.userId !== undefined) userId = result.userId;
    if (result.subprotocol !== undefined) {
      if (!requested.includes(result.subprotocol)) {
        this.service.events.nonBlocking(
          { hub, connectionId, userId, subprotocol },
          "disconnected",
          "Invalid subprotocol.",
        );
        return reject(socket, 500, "The connect handler chose a subprotocol the client did not offer.");
      }
      subprotocol = result.subprotocol;
    }
    const conn = this.service.newConnection(
      connectionId,
      hub,
      userId,
      [...roles, ...(result.roles ?? [])],
      protocolFor(subprotocol),
      subprotocol,
    );
    this.chosen.set(req, subprotocol ?? false);
    // ws completes an upgrade synchronously, or gives up silently when the client has already gone.
    let upgraded = false;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      upgraded = true;
      this.bind(conn, ws, socket);
      this.service.register(conn, [...groups, ...(result.groups ?? []).filter(isValidGroupName)]);
    });
    if (!upgraded) {
      // Accepted by the handler but gone before the upgrade: the handler still hears `disconnected`.
      socket.destroy();
      this.service.events.nonBlocking(
        this.service.subject(conn),
        "disconnected",
        "Client left before the upgrade.",
      );
    }
  }

  private authenticate(req: IncomingMessage, hub: string, url: URL): JwtClaims | string {
    let token = url.searchParams.get("access_token");
    const auth = req.headers.authorization;
    if (!token && auth && /^bearer /i.test(auth)) token = auth.slice(7).trim();
    if (!token) return "Missing access token.";
    const path = `/client/hubs/${hub}`;
    const audiences = [this.endpoint() + path];
    if (req.headers.host)
      audiences.push(`http://${req.headers.host}${path}`, `https://${req.headers.host}${path}`);
    try {
      return verifyHs256(token, this.options.accessKey, {
        audiences,
        clockSkewSeconds: this.options.clockSkewSeconds,
      });
    } catch (err) {
      if (err instanceof JwtError) return `Invalid access token: ${err.message}.`;
      throw err;
    }
  }

  private recover(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    hub: string,
    id: string,
    token: string,
  ): void {
    const conn = this.service.find(hub, id);
    const ok =
      conn !== undefined && conn.protocol.reliable && !conn.ended && conn.matchesReconnectionToken(token);
    this.chosen.set(req, ok ? (conn.subprotocol ?? false) : (this.requestedProtocols(req)[0] ?? false));
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (!ok || conn.ended) {
        // 1008 tells the client that this connection cannot be recovered, so it stops trying.
        ws.close(1008, "Connection cannot be recovered.");
        return;
      }
      if (conn.recoveryTimer) clearTimeout(conn.recoveryTimer);
      conn.recoveryTimer = undefined;
      // The client may notice a dead network before we do: the new socket takes over from the old.
      const previous = conn.ws;
      this.bind(conn, ws, socket);
      previous?.terminate();
      conn.sendControl({
        type: "connected",
        connectionId: conn.id,
        userId: conn.userId ?? "",
        reconnectionToken: conn.reconnectionToken!,
      });
      conn.resendUnacked();
      this.service.announce("recovered", { hub: conn.hub, connectionId: conn.id, userId: conn.userId });
    });
  }

  private bind(conn: ClientConnection, ws: WebSocket, socket: Duplex): void {
    conn.attach(ws, socket);
    ws.on("error", (err) => this.options.log(`socket error on ${conn.id}: ${err.message}`));
    ws.on("pong", () => (conn.lastSeen = Date.now()));
    ws.on("message", (data, isBinary) => {
      conn.lastSeen = Date.now();
      try {
        this.onFrame(conn, data as Buffer, isBinary);
      } catch (err) {
        // A bad frame must never take the emulator down; it costs the sender its connection.
        this.options.log(`frame from ${conn.id} failed: ${err instanceof Error ? err.message : String(err)}`);
        this.service.close(conn, "Internal error while processing a message.", { code: 1011 });
      }
    });
    ws.on("close", (code, reason) => {
      if (conn.ws !== ws) return;
      const why = reason.length > 0 ? reason.toString() : `closed with code ${code}`;
      if (conn.ended) return;
      // A client that says goodbye (1000) or breaks the protocol is gone; anything else may recover.
      if (code === 1000 || code === 1001 || code === 1003 || code === 1007 || code === 1009) {
        conn.ws = undefined;
        this.service.forget(conn, why);
      } else {
        this.service.transportLost(conn, why);
      }
    });
  }

  private onFrame(conn: ClientConnection, data: Buffer, isBinary: boolean): void {
    if (conn.ended) return;
    const kind = conn.protocol.kind;
    if (kind === "simple") {
      this.service.userEvent(
        conn,
        "message",
        isBinary ? { kind: "binary", bytes: data } : { kind: "text", text: data.toString("utf8") },
      );
      return;
    }
    if (kind === "protobuf") {
      if (!isBinary) return this.protocolError(conn, 1003, "Protobuf subprotocol needs binary frames.");
      try {
        this.service.handleUpstream(conn, decodeUpstream(data));
      } catch (err) {
        if (err instanceof ProtocolDecodeError)
          return this.protocolError(conn, 1007, "Invalid protobuf message.");
        throw err;
      }
      return;
    }
    if (isBinary) return this.protocolError(conn, 1003, "JSON subprotocol needs text frames.");
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString("utf8"));
    } catch {
      return this.protocolError(conn, 1007, "Invalid JSON.");
    }
    const msg = parseJsonUpstream(parsed);
    if ("invalid" in msg) {
      this.options.log(`invalid message from ${conn.id}: ${msg.invalid}`);
      if (msg.ackId !== undefined) {
        conn.sendControl({
          type: "ack",
          ackId: msg.ackId,
          success: false,
          error: { name: "BadRequest", message: msg.invalid },
        });
      }
      return;
    }
    this.service.handleUpstream(conn, msg);
  }

  private protocolError(conn: ClientConnection, code: number, reason: string): void {
    this.service.close(conn, reason, { code });
  }

  close(): void {
    this.wss.close();
  }
}

/**
 * The relay client: one Web PubSub client connection on the protobuf subprotocol, carrying the
 * tunnel's frames as binary group messages (docs/tunnel-protocol.md §1). It implements
 * TunnelTransport, so the multiplexer never sees Web PubSub.
 */
import { EventEmitter } from "node:events";
import type { Agent, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import WebSocket from "ws";
import type { TunnelTransport } from "../../tunnel";
import { PROTOBUF_SUBPROTOCOL, corkForTick, decodeDownstream, encodeUpstream } from "../../webpubsub";
import { RelayError } from "./errors";
import { type RelayPolicy, checkRelayUrl } from "./policy";

export interface RelayConnectOptions {
  /** Client URL from the control plane; the token never goes into it. */
  url: string;
  token: string;
  /** The stream's group, `stream.<streamId>`. */
  group: string;
  /** The device's exact relay, or the hosts a service side accepts. */
  policy: RelayPolicy;
  /** E.g. an HTTPS proxy agent (see proxyAgentFor). */
  agent?: Agent;
  connectTimeoutInMs?: number;
  abortSignal?: AbortSignal;
}

interface RelayEvents {
  message: [frame: Uint8Array];
  close: [reason: string];
}

const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
/**
 * How long a deliberate close waits for the relay's half of the close handshake before the socket
 * is destroyed. ws waits 30 s by default, which would hold a stopping agent or a failed command
 * that long when the relay is unreachable; a relay that is up answers in milliseconds.
 */
export const RELAY_CLOSE_TIMEOUT_MS = 5_000;
/** How long the side answering a CLOSE waits for the peer to leave the relay before it leaves itself. */
export const RELAY_LINGER_MS = 2_000;

/** Opens the WebSocket and resolves once the relay said `connected`. */
export async function connectRelay(options: RelayConnectOptions): Promise<RelayConnection> {
  const checked = checkRelayUrl(options.url, options.policy);
  if (!checked.ok) throw new RelayError("RelayNotAllowed", checked.reason);
  if (options.abortSignal?.aborted) throw new RelayError("Aborted", "relay connection aborted");
  const shown = `${checked.url.protocol}//${checked.url.host}`;
  // The token travels only in the Authorization header: never in a URL that proxies or logs keep.
  checked.url.searchParams.delete("access_token");
  const ws = new WebSocket(checked.url, PROTOBUF_SUBPROTOCOL, {
    headers: { authorization: `Bearer ${options.token}` },
    ...(options.agent ? { agent: options.agent } : {}),
    perMessageDeflate: false,
    // In ws since 8.19; @types/ws does not declare it yet.
    ...({ closeTimeout: RELAY_CLOSE_TIMEOUT_MS } as WebSocket.ClientOptions),
    // One frame per macrotask: whatever a frame resolves (an opened channel) gets its listeners
    // attached before the next frame (say, that channel's RESET) is processed.
    allowSynchronousEvents: false,
  });
  const connection = new RelayConnection(ws, options.group);
  const timeoutMs = options.connectTimeoutInMs ?? DEFAULT_CONNECT_TIMEOUT_MS;

  await new Promise<void>((resolve, reject) => {
    const fail = (err: RelayError) => {
      cleanup();
      ws.removeAllListeners("message");
      // Terminating a socket that is still connecting emits an error; the rejection already says why.
      ws.on("error", () => undefined);
      ws.terminate();
      reject(err);
    };
    const onUnexpected = (_req: unknown, res: { statusCode?: number }) => {
      const status = res.statusCode ?? 0;
      const hint =
        status === 401 || status === 403
          ? ": the relay token is single-use and expires; open a new stream"
          : "";
      fail(
        new RelayError(
          "RelayRefused",
          `relay ${shown} refused the connection (HTTP ${status})${hint}`,
          status,
        ),
      );
    };
    const onError = (err: Error) =>
      fail(new RelayError("RelayUnreachable", `cannot reach relay ${shown}: ${err.message}`));
    const onClose = (code: number, reason: Buffer) =>
      fail(
        new RelayError(
          "RelayClosed",
          `relay ${shown} closed before connected (${code} ${reason.toString()})`.trim(),
        ),
      );
    const onAbort = () => fail(new RelayError("Aborted", "relay connection aborted"));
    const timer = setTimeout(
      () =>
        fail(
          new RelayError("RelayTimeout", `relay ${shown} did not confirm the connection in ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
    const cleanup = () => {
      clearTimeout(timer);
      ws.off("unexpected-response", onUnexpected);
      ws.off("error", onError);
      ws.off("close", onClose);
      options.abortSignal?.removeEventListener("abort", onAbort);
      connection.off("connected", onConnected);
    };
    const onConnected = () => {
      cleanup();
      resolve();
    };
    ws.on("unexpected-response", onUnexpected);
    ws.on("error", onError);
    ws.on("close", onClose);
    options.abortSignal?.addEventListener("abort", onAbort);
    connection.once("connected", onConnected);
  });
  connection.attach();
  return connection;
}

export class RelayConnection
  extends EventEmitter<RelayEvents & { connected: [connectionId: string] }>
  implements TunnelTransport
{
  connectionId = "";
  private closed = false;
  private disconnectedReason: string | undefined;
  private reporter: (() => number) | undefined;
  private reported = false;
  private readonly ended: Promise<void>;
  /** The WebSocket's own TCP/TLS socket, corked while a tick's frames are queued (see send). */
  private socket: Socket | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly group: string,
  ) {
    super();
    ws.binaryType = "nodebuffer";
    ws.once("upgrade", (res: IncomingMessage) => (this.socket = res.socket));
    this.ended = new Promise((resolve) => ws.once("close", () => resolve()));
    ws.on("message", this.onMessage);
    // Frames that arrive before the tunnel attaches are held, not lost: the device's peer may speak
    // the moment both are in the group.
    (this as EventEmitter).on("newListener", (event: string | symbol) => {
      if (event === "message" && this.early.length > 0) process.nextTick(() => this.flushEarly());
    });
  }

  private readonly early: Uint8Array[] = [];

  private flushEarly(): void {
    while (this.early.length > 0 && this.listenerCount("message") > 0 && !this.closed) {
      this.emit("message", this.early.shift()!);
    }
  }

  /** After `connected`: socket errors and closes now end the transport. */
  attach(): void {
    this.ws.on("error", () => undefined); // the close that follows carries the outcome
    this.ws.on("close", (code, reason) => {
      const why = this.disconnectedReason ?? (reason.length > 0 ? reason.toString() : "");
      this.finish(`relay connection closed (${code}${why ? `: ${why}` : ""})`);
    });
  }

  /** What `report` sends as `bytesSent` before a deliberate close (the tunnel's payload bytes). */
  reportBytesWith(reporter: () => number): void {
    this.reporter = reporter;
  }

  /**
   * Frames sent in the same tick leave in one write: the tunnel flushes a batch of frames at once
   * (OPEN with its early DATA, DATA of many channels, WINDOW), and one syscall per WebSocket message
   * was the largest cost of small-frame traffic in the profile (docs/performance.md).
   */
  send(frame: Uint8Array): void {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.socket) corkForTick(this.socket);
    this.ws.send(
      encodeUpstream({
        type: "sendToGroup",
        group: this.group,
        noEcho: true,
        data: { kind: "binary", bytes: frame },
      }),
    );
  }

  /**
   * Reports the byte count (best effort, unless sendReport already did), then closes the WebSocket
   * normally. Answering the peer's CLOSE, it first gives the peer up to RELAY_LINGER_MS to leave: the
   * control plane records the first side to leave as the closer and then ends the other connection
   * itself, so the stream's record names the side that really ended it instead of whichever socket
   * closed first.
   */
  close(reason: string, answeringPeer = false): void {
    if (this.closed) return;
    this.sendReport();
    this.finish(reason);
    if (!answeringPeer) return this.ws.close(1000, reason.slice(0, 120));
    const linger = setTimeout(() => this.ws.close(1000, reason.slice(0, 120)), RELAY_LINGER_MS);
    void this.ended.then(() => clearTimeout(linger));
  }

  /** The `report` user event with `bytesSent`, once per connection (see TunnelTransport). */
  sendReport(): void {
    if (this.reported || this.closed || this.ws.readyState !== WebSocket.OPEN || !this.reporter) return;
    this.reported = true;
    const bytesSent = this.reporter();
    this.ws.send(
      encodeUpstream({
        type: "event",
        event: "report",
        data: { kind: "json", json: JSON.stringify({ bytesSent }) },
      }),
    );
  }

  /** Whether the open WebSocket holds the process open (net.Socket's ref/unref on its socket). */
  ref(): void {
    this.socket?.ref();
  }

  unref(): void {
    this.socket?.unref();
  }

  /** Cuts the socket without a close handshake, as a dying process would (tests, fault handling). */
  terminate(): void {
    this.ws.terminate();
  }

  /** Resolves when the socket is fully closed (at most RELAY_CLOSE_TIMEOUT_MS after close()). */
  whenClosed(): Promise<void> {
    return this.ended;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.emit("close", reason);
  }

  private readonly onMessage = (data: Buffer, isBinary: boolean): void => {
    if (this.closed) return;
    if (!isBinary) return this.fail("the relay sent a text frame on the protobuf subprotocol");
    let msg;
    try {
      msg = decodeDownstream(data);
    } catch {
      return this.fail("the relay sent an undecodable message");
    }
    switch (msg.type) {
      case "connected":
        this.connectionId = msg.connectionId;
        this.emit("connected", msg.connectionId);
        return;
      case "disconnected":
        this.disconnectedReason = msg.reason;
        return;
      case "message":
        // Anything but binary data cannot be a tunnel frame; dropping it could lose bytes, so close.
        if (msg.data?.kind !== "binary")
          return this.fail(`a non-binary ${msg.data?.kind ?? "empty"} group message`);
        if (this.listenerCount("message") === 0 || this.early.length > 0) this.early.push(msg.data.bytes);
        else this.emit("message", msg.data.bytes);
        return;
      default:
        return; // acks and pongs: this client asks for neither
    }
  };

  private fail(reason: string): void {
    this.ws.close(1002, reason.slice(0, 120));
    this.finish(reason);
  }
}

import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { once } from "node:events";
import { HubErrors, HubHttpError, errorBody } from "./hubErrors";
import type { EmulatorLog } from "../log";

/** 128 KB of method payload plus the JSON envelope around it. */
export const MAX_BODY_BYTES = 256 * 1024;

export interface HubRequest {
  method: string;
  /** Decoded path segments, e.g. ["twins", "dev 1", "methods"]. */
  segments: string[];
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  body: unknown;
  /** Aborts when the caller goes away before we answer. */
  signal: AbortSignal;
}

export interface HubReply {
  status: number;
  body?: unknown;
}

export type HubRequestHandler = (request: HubRequest) => Promise<HubReply>;

/** Takes over HTTP upgrade requests on the same port (MQTT over WebSockets). */
export interface UpgradeHandler {
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Ends the connections it took over; called when the server closes. */
  close(): void;
}

class BodyTooLarge extends Error {}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function decodeSegments(pathname: string): string[] {
  return pathname
    .split("/")
    .filter((s) => s.length > 0)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        throw HubErrors.badRequest(`The path segment '${s}' is not valid URL encoding.`);
      }
    });
}

function send(
  res: ServerResponse,
  status: number,
  body: string | undefined,
  headers: Record<string, string> = {},
) {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    ...(body === undefined ? {} : { "Content-Type": "application/json; charset=utf-8" }),
    ...headers,
  });
  res.end(body);
}

/**
 * The service-facing HTTPS endpoint: reads and parses the request, hands it to one handler, and is
 * the only place that turns a thrown HubHttpError (or anything else) into an HTTP answer. Upgrade
 * requests go to the upgrade handler.
 */
export class HubRestServer {
  private server?: Server;

  constructor(
    private readonly tls: { key: string; cert: string },
    private readonly handler: HubRequestHandler,
    private readonly log: EmulatorLog,
    private readonly upgrades: UpgradeHandler,
  ) {}

  async start(host: string, port: number): Promise<number> {
    const server = createServer(
      { key: this.tls.key, cert: this.tls.cert, keepAliveTimeout: 60_000 },
      (req, res) => {
        void this.handle(req, res);
      },
    );
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrades.upgrade(req, socket, head),
    );
    server.on("error", (err: Error) => this.log(`https server error: ${err.message}`));
    server.on("tlsClientError", (err, socket) => {
      this.log(`https TLS handshake failed from ${socket.remoteAddress ?? "?"}: ${err.message}`);
    });
    this.server = server;
    server.listen(port, host);
    await once(server, "listening");
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = once(server, "close");
    server.close();
    server.closeAllConnections();
    this.upgrades.close();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const controller = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) controller.abort();
    });
    try {
      let text: string;
      try {
        text = await readBody(req);
      } catch (err) {
        if (err instanceof BodyTooLarge) {
          res.setHeader("Connection", "close");
          throw HubErrors.tooLarge(MAX_BODY_BYTES);
        }
        // The caller went away mid-request: nobody is left to answer.
        res.destroy();
        return;
      }
      let body: unknown;
      if (text.length > 0) {
        try {
          body = JSON.parse(text) as unknown;
        } catch {
          throw HubErrors.badRequest("The request body is not valid JSON.");
        }
      }
      const url = new URL(req.url ?? "/", "https://emulator");
      // Segments from the path as sent: url.pathname has folded `.` and `..`, which are legal IDs.
      const rawPath = (req.url ?? "/").split("?")[0] ?? "/";
      const reply = await this.handler({
        method: req.method ?? "GET",
        segments: decodeSegments(rawPath),
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body,
        signal: controller.signal,
      });
      send(res, reply.status, reply.body === undefined ? undefined : JSON.stringify(reply.body));
    } catch (err) {
      const hubError = err instanceof HubHttpError ? err : HubErrors.internal();
      if (!(err instanceof HubHttpError)) {
        this.log(`https internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
      send(res, hubError.statusCode, errorBody(hubError), {
        "iothub-errorcode": hubError.errorName,
        ...hubError.headers,
      });
    }
  }
}

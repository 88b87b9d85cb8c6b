import { createHmac } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import WebSocket from "ws";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import {
  startWebPubSubEmulator,
  type WebPubSubEmulator,
  type WebPubSubEmulatorOptions,
} from "../../../emulators/webpubsub";

export const KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

export async function startEmulator(options: WebPubSubEmulatorOptions = {}): Promise<WebPubSubEmulator> {
  return startWebPubSubEmulator({ port: 0, ...options });
}

export function serviceClient(emulator: WebPubSubEmulator, hub: string): WebPubSubServiceClient {
  // The SDK refuses plain http unless told; the control plane must pass this option locally too.
  return new WebPubSubServiceClient(emulator.connectionString, hub, { allowInsecureConnection: true });
}

/** Resolves when `predicate` holds for an item pushed later (or already there). */
export class Inbox<T> {
  readonly items: T[] = [];
  private waiters: { predicate: (item: T) => boolean; resolve: (item: T) => void }[] = [];

  push(item: T): void {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (!w.predicate(item)) return true;
      w.resolve(item);
      return false;
    });
  }

  wait(predicate: (item: T) => boolean = () => true): Promise<T> {
    const found = this.items.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }

  /** Waits until `count` items satisfy `predicate`. */
  async waitCount(count: number, predicate: (item: T) => boolean = () => true): Promise<T[]> {
    for (;;) {
      const matching = this.items.filter(predicate);
      if (matching.length >= count) return matching;
      await new Promise<T>((resolve) => this.waiters.push({ predicate, resolve }));
    }
  }
}

export interface RawClient {
  ws: WebSocket;
  frames: Inbox<{ data: Buffer; binary: boolean }>;
  closed: Promise<{ code: number; reason: string }>;
}

/** A raw ws client that records every frame, opened or refused (then `status` is set). */
export async function rawClient(
  url: string,
  protocols: string[] = [],
  headers: Record<string, string> = {},
): Promise<RawClient> {
  const ws = new WebSocket(url, protocols, { headers });
  const frames = new Inbox<{ data: Buffer; binary: boolean }>();
  ws.on("message", (data, binary) => frames.push({ data: data as Buffer, binary }));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_req, res) =>
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })),
    );
    ws.once("error", reject);
  });
  return { ws, frames, closed };
}

/** The status a refused upgrade got. */
export async function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  try {
    const c = await rawClient(url, [], headers);
    c.ws.terminate();
    return 101;
  } catch (err) {
    return (err as { status?: number }).status ?? -1;
  }
}

export interface ReceivedEvent {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  signatureValid: boolean;
  /** performance.now() when the request arrived. */
  at: number;
}

export type EventReply = { status: number; body?: unknown; contentType?: string };

/**
 * A real CloudEvents handler: answers the abuse-protection handshake, checks `ce-signature` like
 * the Functions extension does (401 when wrong), records everything, and replies per `reply`.
 */
export async function startEventHandler(
  reply: (e: ReceivedEvent) => EventReply | Promise<EventReply> = () => ({ status: 200 }),
  options: { allowedOrigin?: string; key?: string } = {},
): Promise<{
  url: string;
  events: Inbox<ReceivedEvent>;
  options: Inbox<http.IncomingHttpHeaders>;
  close(): Promise<void>;
}> {
  const events = new Inbox<ReceivedEvent>();
  const optionsSeen = new Inbox<http.IncomingHttpHeaders>();
  const key = options.key ?? KEY;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "OPTIONS") {
        optionsSeen.push(req.headers);
        const origin = req.headers["webhook-request-origin"];
        res.writeHead(200, { "WebHook-Allowed-Origin": options.allowedOrigin ?? String(origin) }).end();
        return;
      }
      const id = String(req.headers["ce-connectionid"] ?? "");
      const expected = "sha256=" + createHmac("sha256", key).update(id).digest("hex");
      const given = String(req.headers["ce-signature"] ?? "").split(",");
      const e: ReceivedEvent = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks),
        signatureValid: given.includes(expected),
        at: performance.now(),
      };
      events.push(e);
      if (!e.signatureValid) {
        res.writeHead(401).end();
        return;
      }
      void Promise.resolve(reply(e)).then((r) => {
        if (r.body === undefined) {
          res.writeHead(r.status).end();
        } else if (Buffer.isBuffer(r.body) || typeof r.body === "string") {
          res.writeHead(r.status, { "content-type": r.contentType ?? "text/plain" }).end(r.body);
        } else {
          res.writeHead(r.status, { "content-type": "application/json" }).end(JSON.stringify(r.body));
        }
      });
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/relay/events`,
    events,
    options: optionsSeen,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

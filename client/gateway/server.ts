/**
 * `devicestream gateway`: one HTTP server in front of many devices' web servers (docs/gateway.md).
 * The Host header's first label selects the target, the end user's ticket or session proves the
 * right to reach it, and the request goes over a DeviceHttpAgent for that target: streams are
 * opened on first use, shared by every request to the target, and closed once it goes idle.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { escapeControl } from "../../common/text";
import { DeviceHttpAgent, type DeviceTarget, type StreamsClient } from "../sdk/service";
import type { AuthResult, GatewayAuth } from "./auth";
import { type GatewayFailure, describeTarget, failureFor, writeFailure, writeRawFailure } from "./errors";
import { parseHost } from "./hostname";
import { type Proto, fromDeviceHeaders, originAllowed, toDeviceHeaders } from "./isolation";

export interface GatewayOptions {
  client: StreamsClient;
  /** Device hosts are `<label>.<baseDomain>`; `localhost` locally (browsers resolve `*.localhost`). */
  baseDomain: string;
  /** Default 127.0.0.1:8080: loopback unless the caller says otherwise. */
  listen?: { host: string; port: number };
  /** createGatewayAuth: tickets, sessions, and the cookie name that never reaches a device. */
  auth: GatewayAuth;
  /** Which targets the gateway opens at all (default: any a valid ticket names). */
  allow?: (target: DeviceTarget) => boolean;
  /**
   * The Host the device's web server sees: "device" (default) `localhost`, as when it is opened on
   * the device itself; "original" the gateway's host name; any other value as given.
   */
  hostHeader?: string;
  /** The scheme users reach the gateway with (https behind a TLS-terminating proxy). Default http. */
  proto?: Proto;
  /** A target with no request for this long has its streams closed (default 30 s). */
  idleCloseInMs?: number;
  /** How long a device has to accept a new stream (openStream's handshakeTimeoutInMs; 5-60 s). */
  handshakeTimeoutInMs?: number;
  /** One line per request (the CLI writes them to stderr). */
  log?: (line: string) => void;
}

export interface Gateway {
  url: string;
  port: number;
  /** Targets with an open agent now (their streams may still be opening). */
  readonly activeTargets: number;
  close(): Promise<void>;
}

const DEFAULT_IDLE_CLOSE_MS = 30_000;
/** Paths are the device's, and arbitrary: a log line shows at most this much of one. */
const MAX_LOGGED_PATH = 200;

interface Entry {
  agent: DeviceHttpAgent;
  active: number;
  timer: NodeJS.Timeout | undefined;
}

interface Routed {
  host: string;
  target: DeviceTarget;
}

/** Counts of one exchange, for the access log. */
interface Exchange {
  started: number;
  method: string;
  path: string;
  target: DeviceTarget | undefined;
  label: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { client, baseDomain, auth } = options;
  const proto: Proto = options.proto ?? "http";
  const cookieName = auth.cookieName;
  const idleCloseInMs = options.idleCloseInMs ?? DEFAULT_IDLE_CLOSE_MS;
  const log = options.log ?? (() => undefined);
  const agents = new Map<string, Entry>();
  let closing = false;

  const keyOf = (t: DeviceTarget) => JSON.stringify([t.deviceId, t.moduleId ?? null, t.streamName]);

  /** The target's agent, held until `release`: a target with nothing in flight closes when idle. */
  function acquire(target: DeviceTarget): { agent: DeviceHttpAgent; release: () => void } {
    const key = keyOf(target);
    let entry = agents.get(key);
    if (!entry) {
      const agent = new DeviceHttpAgent(client, target, {
        pool: { idleCloseInMs },
        ...(options.handshakeTimeoutInMs !== undefined
          ? { openOptions: { handshakeTimeoutInMs: options.handshakeTimeoutInMs } }
          : {}),
      });
      entry = { agent, active: 0, timer: undefined };
      agents.set(key, entry);
    }
    const held = entry;
    clearTimeout(held.timer);
    held.active++;
    let released = false;
    return {
      agent: held.agent,
      release: () => {
        if (released) return;
        released = true;
        if (--held.active > 0) return;
        held.timer = setTimeout(() => {
          if (agents.get(key) !== held || held.active > 0) return;
          agents.delete(key);
          void held.agent.close();
        }, idleCloseInMs);
        held.timer.unref();
      },
    };
  }

  function hostHeaderFor(host: string): string {
    const h = options.hostHeader ?? "device";
    return h === "device" ? "localhost" : h === "original" ? host : h;
  }

  /**
   * Host routing, authentication and the allow-list, in that order: a request for no device is a
   * 404 whoever sends it; one for a device needs the user's right to it before anything else.
   */
  async function route(req: IncomingMessage, x: Exchange): Promise<Routed | Refusal> {
    const host = req.headers.host ?? "";
    const label = parseHost(host, baseDomain);
    if (label === undefined) {
      return {
        status: 404,
        code: "UnknownHost",
        message: `This gateway serves device hosts of the form <label>.${baseDomain}.`,
      };
    }
    x.label = label;
    if (!req.url?.startsWith("/")) {
      return { status: 400, code: "InvalidRequestTarget", message: "The request target must be a path." };
    }
    const decision = await auth.authenticate(req, label);
    if (decision.kind === "login" || decision.kind === "deny") return decision;
    x.target = decision.target;
    if (options.allow && !options.allow(decision.target)) {
      return {
        status: 403,
        code: "NotAllowed",
        message: `This gateway does not open the ${describeTarget(decision.target)}.`,
      };
    }
    return { host, target: decision.target };
  }

  function accessLog(x: Exchange): void {
    const t = x.target;
    const who = t
      ? `${t.deviceId}${t.moduleId !== undefined ? `/${t.moduleId}` : ""} ${t.streamName}`
      : `- -`;
    const path = x.path.length > MAX_LOGGED_PATH ? `${x.path.slice(0, MAX_LOGGED_PATH)}...` : x.path;
    log(
      escapeControl(
        `gateway: ${who} ${x.method} ${path} ${x.status} in=${x.bytesIn} out=${x.bytesOut} ${Date.now() - x.started}ms`,
      ),
    );
  }

  function exchange(req: IncomingMessage): Exchange {
    // Never the query string: tickets and the device's own tokens travel there.
    const path = (req.url ?? "").split("?")[0]!;
    return {
      started: Date.now(),
      method: req.method ?? "",
      path,
      target: undefined,
      label: "",
      status: 0,
      bytesIn: 0,
      bytesOut: 0,
    };
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const x = exchange(req);
    res.once("close", () => accessLog({ ...x, status: x.status || res.statusCode }));
    const routed = await route(req, x);
    if (!isRouted(routed)) {
      x.status = answerRefusal(res, routed);
      return;
    }
    const { agent, release } = acquire(routed.target);
    res.once("close", release);
    const upstream = http.request({
      agent,
      method: req.method,
      path: req.url,
      setHost: false,
      headers: toDeviceHeaders(req.headers, {
        host: routed.host,
        remoteAddress: req.socket.remoteAddress ?? "",
        proto,
        hostHeader: hostHeaderFor(routed.host),
        cookieName,
      }),
    });
    upstream.on("response", (ures) => {
      x.status = ures.statusCode ?? 502;
      res.writeHead(x.status, fromDeviceHeaders(ures.headers, { host: routed.host, proto, cookieName }));
      ures.on("data", (b: Buffer) => (x.bytesOut += b.length));
      ures.pipe(res);
      ures.once("error", () => res.destroy());
    });
    upstream.on("error", (err) => {
      // The device's connection ended mid-body: the user's must end too, not look complete.
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const failure = failureFor(err, routed.target);
      x.status = failure.status;
      writeFailure(res, failure);
    });
    // The user went away: the channel under this request is not reused for another.
    res.once("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.on("data", (b: Buffer) => (x.bytesIn += b.length));
    req.pipe(upstream);
  }

  function answerRefusal(res: ServerResponse, r: Refusal): number {
    if ("kind" in r && r.kind === "login") {
      res.writeHead(r.status, { "Cache-Control": "no-store", ...r.headers });
      res.end();
      return r.status;
    }
    const f = asFailure(r);
    writeFailure(res, f);
    return f.status;
  }

  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const x = exchange(req);
    socket.on("error", () => undefined);
    const refuse = (f: GatewayFailure) => {
      x.status = f.status;
      writeRawFailure(socket, f);
      accessLog(x);
    };
    const routed = await route(req, x);
    if (!isRouted(routed)) return refuse(asFailure(routed));
    if (!originAllowed(req.headers.origin, routed.host, proto)) {
      return refuse({
        status: 403,
        code: "OriginNotAllowed",
        message: "A WebSocket to a device must come from a page of that device's own host.",
      });
    }
    const { agent, release } = acquire(routed.target);
    const headers = toDeviceHeaders(req.headers, {
      host: routed.host,
      remoteAddress: req.socket.remoteAddress ?? "",
      proto,
      hostHeader: hostHeaderFor(routed.host),
      cookieName,
    });
    const upstream = http.request({
      agent,
      method: req.method,
      path: req.url,
      setHost: false,
      // toDeviceHeaders drops hop-by-hop headers; an upgrade is the one hop-by-hop exchange passed on.
      headers: { ...headers, connection: "Upgrade", upgrade: req.headers.upgrade ?? "websocket" },
    });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      release();
      accessLog(x);
    };
    socket.once("close", finish);
    upstream.on("upgrade", (ures, usocket, uhead) => {
      x.status = 101;
      const out = {
        ...fromDeviceHeaders(ures.headers, { host: routed.host, proto, cookieName }),
        connection: "Upgrade",
        upgrade: ures.headers.upgrade ?? "websocket",
      };
      socket.write(`HTTP/1.1 101 Switching Protocols\r\n${rawHeaders(out)}\r\n`);
      if (uhead.length) socket.write(uhead);
      if (head.length) usocket.write(head);
      usocket.on("error", () => socket.destroy());
      socket.on("error", () => usocket.destroy());
      usocket.on("data", (b: Buffer) => (x.bytesOut += b.length));
      socket.on("data", (b: Buffer) => (x.bytesIn += b.length));
      usocket.pipe(socket).on("close", () => usocket.destroy());
      socket.pipe(usocket);
      socket.once("close", () => usocket.destroy());
      usocket.once("close", () => socket.destroy());
    });
    upstream.on("response", (ures) => {
      // The device declined the upgrade: its answer goes back as it is, and the connection ends.
      x.status = ures.statusCode ?? 502;
      const out = fromDeviceHeaders(ures.headers, { host: routed.host, proto, cookieName });
      socket.write(
        `HTTP/1.1 ${x.status} ${STATUS(x.status)}\r\n${rawHeaders({ ...out, connection: "close" })}\r\n`,
      );
      ures.pipe(socket);
    });
    upstream.on("error", (err) => {
      if (x.status !== 0) return void socket.destroy();
      refuse(failureFor(err, routed.target));
    });
    upstream.end();
  }

  const server = http.createServer((req, res) => {
    onRequest(req, res).catch((err: unknown) => internalError(res, err));
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    onUpgrade(req, socket, head).catch(() => socket.destroy());
  });
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });

  function internalError(res: ServerResponse, err: unknown): void {
    log(escapeControl(`gateway: internal error: ${err instanceof Error ? err.message : String(err)}`));
    if (res.headersSent) return void res.destroy();
    writeFailure(res, { status: 500, code: "InternalError", message: "The gateway failed." });
  }

  const listen = options.listen ?? { host: "127.0.0.1", port: 8080 };
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;

  return {
    url: `${proto}://${shownHost}:${address.port}`,
    port: address.port,
    get activeTargets() {
      return agents.size;
    },
    close: async () => {
      if (closing) return;
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      const entries = [...agents.values()];
      agents.clear();
      for (const e of entries) clearTimeout(e.timer);
      await Promise.all(entries.map((e) => e.agent.close()));
      await stopped;
    },
  };
}

type Refusal = GatewayFailure | Exclude<AuthResult, { kind: "allow" }>;

const isRouted = (r: Routed | Refusal): r is Routed => "target" in r && "host" in r;

/** A refusal as a failure body; a login on a WebSocket has nothing to upgrade to (a page load logs in). */
function asFailure(r: Refusal): GatewayFailure {
  if (!("kind" in r)) return r;
  if (r.kind === "login") return { status: 400, code: "InvalidRequest", message: "Log in with a page load." };
  return { status: r.status, code: r.code, message: r.message };
}

const STATUS = (status: number): string => http.STATUS_CODES[status] ?? "";

/** Header lines for a raw response; values a device chose cannot break a line (CR/LF dropped). */
function rawHeaders(headers: OutgoingHttpHeaders): string {
  let out = "";
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      out += `${name}: ${String(v).replace(/[\r\n]/g, "")}\r\n`;
    }
  }
  return out;
}

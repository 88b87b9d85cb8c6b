/**
 * The data-plane REST API that `@azure/web-pubsub` 1.2 calls, with JWT bearer auth whose `aud`
 * is the request URL with or without its query string (the SDK sends it with; the docs say without).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { dataFromBody } from "./events";
import { OutboundMessage } from "./frames";
import { JwtError, signHs256, verifyHs256 } from "./jwt";
import { isValidHubName, MAX_FRAME_BYTES, type ResolvedOptions } from "./options";
import { isValidGroupName, type WebPubSubService } from "./service";
import type { ClientConnection } from "./connection";
import { BUILT_IN_ROLES } from "../entra/rbac";

/** An Entra token (RS256, from the issuer) rather than one signed with the access key (HS256). */
function isEntraToken(authorization: string): boolean {
  const head = authorization.slice(7).trim().split(".")[0] ?? "";
  try {
    return (JSON.parse(Buffer.from(head, "base64url").toString("utf8")) as { alg?: unknown }).alg === "RS256";
  } catch {
    return false;
  }
}

class RestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const notFound = (what: string): RestError => new RestError(404, "NotFound", `${what} not found.`);
const badRequest = (message: string): RestError => new RestError(400, "BadRequest", message);

interface Ctx {
  method: string;
  hub: string;
  rest: string[];
  query: URLSearchParams;
  req: IncomingMessage;
}

interface Reply {
  status: number;
  body?: unknown;
}

const PERMISSIONS = new Set(["sendToGroup", "joinLeaveGroup"]);

export class RestApi {
  constructor(
    private readonly options: ResolvedOptions,
    private readonly service: WebPubSubService,
    private readonly endpoint: () => string,
  ) {}

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req)
      .then((reply) => this.send(res, reply.status, reply.body))
      .catch((err: unknown) => {
        if (err instanceof RestError)
          return this.send(res, err.status, { code: err.code, message: err.message }, err.code);
        this.options.log(
          `REST ${req.method} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        );
        this.send(
          res,
          500,
          { code: "InternalServerError", message: "An internal error occurred." },
          "InternalServerError",
        );
      });
  }

  private send(res: ServerResponse, status: number, body: unknown, errorCode?: string): void {
    if (res.headersSent) return;
    const headers: Record<string, string> = {};
    if (errorCode) headers["x-ms-error-code"] = errorCode;
    if (body === undefined) {
      res.writeHead(status, headers).end();
      return;
    }
    const text = JSON.stringify(body);
    headers["content-type"] = "application/json; charset=utf-8";
    res.writeHead(status, headers).end(res.req.method === "HEAD" ? undefined : text);
  }

  private async route(req: IncomingMessage): Promise<Reply> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = req.method ?? "GET";
    if (url.pathname === "/api/health") {
      if (method === "GET" || method === "HEAD") return { status: 200 };
      throw new RestError(405, "MethodNotAllowed", `${method} is not allowed.`);
    }
    let segments: string[];
    try {
      segments = url.pathname.split("/").slice(1).map(decodeURIComponent);
    } catch {
      throw badRequest("Malformed percent-encoding in the path.");
    }
    if (segments[0] !== "api" || segments[1] !== "hubs" || segments[2] === undefined) {
      throw new RestError(404, "NotFound", "No such API.");
    }
    await this.authenticate(req);
    const hub = segments[2];
    if (!isValidHubName(hub)) throw badRequest("Invalid hub name.");
    const ctx: Ctx = {
      method,
      hub: hub.toLowerCase(),
      rest: segments.slice(3),
      query: url.searchParams,
      req,
    };
    return this.dispatch(ctx);
  }

  private async authenticate(req: IncomingMessage): Promise<void> {
    const auth = req.headers.authorization;
    if (!auth || !/^bearer /i.test(auth)) throw new RestError(401, "Unauthorized", "Missing bearer token.");
    const entra = this.options.entra;
    if (entra && isEntraToken(auth)) {
      // Reads need Owner or Reader; everything else (sending, closing, :generateToken) needs Owner.
      const read = req.method === "GET" || req.method === "HEAD";
      const { webPubSubServiceOwner: owner, webPubSubServiceReader: reader } = BUILT_IN_ROLES;
      const outcome = await entra.check(auth, read ? [owner, reader] : [owner]);
      if (outcome.ok) return;
      if (outcome.status === 403) throw new RestError(403, "Forbidden", `Access denied: ${outcome.reason}.`);
      throw new RestError(401, "Unauthorized", `Invalid bearer token: ${outcome.reason}.`);
    }
    this.options.onKeySignedRequest();
    const path = req.url ?? "/";
    const pathOnly = path.split("?")[0]!;
    const bases = [this.endpoint()];
    if (req.headers.host) bases.push(`http://${req.headers.host}`, `https://${req.headers.host}`);
    const audiences = bases.flatMap((b) => [b + path, b + pathOnly]);
    try {
      verifyHs256(auth.slice(7).trim(), this.options.accessKey, {
        audiences,
        clockSkewSeconds: this.options.clockSkewSeconds,
      });
    } catch (err) {
      if (err instanceof JwtError)
        throw new RestError(401, "Unauthorized", `Invalid bearer token: ${err.message}.`);
      throw err;
    }
  }

  private conn(ctx: Ctx, id: string): ClientConnection {
    const c = this.service.find(ctx.hub, id);
    if (!c) throw notFound(`Connection '${id}'`);
    return c;
  }

  private group(name: string): string {
    if (!isValidGroupName(name)) throw badRequest("Invalid group name.");
    return name;
  }

  private async message(ctx: Ctx, from: "server" = "server"): Promise<OutboundMessage> {
    if (ctx.query.get("filter"))
      throw new RestError(400, "NotSupported", "OData filters are not supported by the emulator.");
    const body = await readBody(ctx.req, MAX_FRAME_BYTES);
    const data = dataFromBody(ctx.req.headers["content-type"], body);
    if (!data && /^application\/json/i.test(ctx.req.headers["content-type"] ?? "")) {
      throw badRequest("The body is not valid JSON.");
    }
    if (!data)
      throw new RestError(
        415,
        "UnsupportedMediaType",
        "Content-Type must be text/plain, application/json or application/octet-stream.",
      );
    return new OutboundMessage(from, data);
  }

  private async dispatch(ctx: Ctx): Promise<Reply> {
    const { method, hub, rest, query } = ctx;
    const [a, b, c, d] = rest;
    const excluded = new Set(query.getAll("excluded"));
    const reason = query.get("reason") ?? "";
    const closeEach = (conns: ClientConnection[]): Reply => {
      for (const conn of conns)
        if (!excluded.has(conn.id)) this.service.close(conn, reason || "Closed by the server.");
      return { status: 204 };
    };
    const key = `${method} ${rest.map((s, i) => (i % 2 === 1 && !s.startsWith(":") ? "*" : s)).join("/")}`;
    switch (key) {
      case "POST :send":
        this.service.sendToAll(hub, await this.message(ctx), excluded);
        return { status: 202 };
      case "POST :closeConnections":
        return closeEach(this.service.connections(hub));
      case "POST :generateToken":
        return { status: 200, body: { token: this.generateToken(hub, query) } };
      case "POST groups/*/:send":
        this.service.sendToGroup(hub, this.group(b!), await this.message(ctx), excluded);
        return { status: 202 };
      case "POST groups/*/:closeConnections":
        return closeEach(this.service.groupMembers(hub, this.group(b!)));
      case "HEAD groups/*":
        return { status: this.service.groupMembers(hub, b!).length > 0 ? 200 : 404 };
      case "GET groups/*/connections":
        return { status: 200, body: this.listGroup(ctx, this.group(b!)) };
      case "PUT groups/*/connections/*":
        this.service.join(this.conn(ctx, d!), this.group(b!));
        return { status: 200 };
      case "DELETE groups/*/connections/*":
        this.service.leave(this.conn(ctx, d!), this.group(b!));
        return { status: 204 };
      case "POST users/*/:send": {
        const msg = await this.message(ctx);
        for (const conn of this.service.userConnections(hub, b!)) conn.deliver(msg);
        return { status: 202 };
      }
      case "POST users/*/:closeConnections":
        return closeEach(this.service.userConnections(hub, b!));
      case "HEAD users/*":
        return { status: this.service.userConnections(hub, b!).length > 0 ? 200 : 404 };
      case "PUT users/*/groups/*":
        for (const conn of this.service.userConnections(hub, b!)) this.service.join(conn, this.group(d!));
        return { status: 200 };
      case "DELETE users/*/groups/*":
        for (const conn of this.service.userConnections(hub, b!)) this.service.leave(conn, this.group(d!));
        return { status: 204 };
      case "DELETE users/*/groups":
        for (const conn of this.service.userConnections(hub, b!))
          for (const g of [...conn.groups]) this.service.leave(conn, g);
        return { status: 204 };
      case "POST connections/*/:send": {
        const msg = await this.message(ctx);
        this.conn(ctx, b!).deliver(msg);
        return { status: 202 };
      }
      case "HEAD connections/*":
        return { status: this.service.find(hub, b!) ? 200 : 404 };
      case "DELETE connections/*": {
        const conn = this.service.find(hub, b!);
        if (conn) this.service.close(conn, reason || "Closed by the server.");
        return { status: 204 };
      }
      case "DELETE connections/*/groups": {
        const conn = this.conn(ctx, b!);
        for (const g of [...conn.groups]) this.service.leave(conn, g);
        return { status: 204 };
      }
      case "PUT permissions/*/connections/*":
      case "DELETE permissions/*/connections/*":
      case "HEAD permissions/*/connections/*":
        return this.permission(ctx, b!, d!);
      default:
        void a;
        void c;
        throw new RestError(404, "NotFound", `No API for ${method} /api/hubs/${hub}/${rest.join("/")}.`);
    }
  }

  private permission(ctx: Ctx, permission: string, id: string): Reply {
    if (!PERMISSIONS.has(permission)) throw badRequest(`Unknown permission '${permission}'.`);
    const conn = this.conn(ctx, id);
    const target = ctx.query.get("targetName");
    const role = target ? `webpubsub.${permission}.${target}` : `webpubsub.${permission}`;
    if (ctx.method === "PUT") conn.roles.add(role);
    else if (ctx.method === "DELETE") conn.roles.delete(role);
    else
      return {
        status: target
          ? conn.can(permission as "sendToGroup", target)
            ? 200
            : 404
          : conn.roles.has(role)
            ? 200
            : 404,
      };
    return { status: ctx.method === "PUT" ? 200 : 204 };
  }

  private listGroup(
    ctx: Ctx,
    group: string,
  ): { value: { connectionId: string; userId?: string }[]; nextLink?: string } {
    const members = this.service.groupMembers(ctx.hub, group).sort((x, y) => (x.id < y.id ? -1 : 1));
    const pageSize = Math.max(1, Number(ctx.query.get("maxpagesize") ?? "200") || 200);
    const top = ctx.query.get("top") === null ? Infinity : Number(ctx.query.get("top"));
    const after = ctx.query.get("continuationToken");
    const start = after ? members.findIndex((m) => m.id > after) : 0;
    const remaining = start < 0 ? [] : members.slice(start, start + Math.min(pageSize, top));
    const value = remaining.map((m) =>
      m.userId === undefined ? { connectionId: m.id } : { connectionId: m.id, userId: m.userId },
    );
    const last = remaining[remaining.length - 1];
    if (!last || start + remaining.length >= members.length || remaining.length >= top) return { value };
    const next = new URL(
      `${this.endpoint()}/api/hubs/${ctx.hub}/groups/${encodeURIComponent(group)}/connections`,
    );
    next.searchParams.set("maxpagesize", String(pageSize));
    next.searchParams.set("continuationToken", last.id);
    next.searchParams.set("api-version", ctx.query.get("api-version") ?? "2024-12-01");
    return { value, nextLink: next.href };
  }

  private generateToken(hub: string, query: URLSearchParams): string {
    const minutes = query.get("minutesToExpire") === null ? 60 : Number(query.get("minutesToExpire"));
    if (!Number.isFinite(minutes) || minutes <= 0)
      throw badRequest("minutesToExpire must be a positive number.");
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      aud: `${this.endpoint()}/client/hubs/${hub}`,
      iat: now,
      exp: now + Math.round(minutes * 60),
    };
    const userId = query.get("userId");
    if (userId) claims.sub = userId;
    const roles = query.getAll("role");
    if (roles.length > 0) claims.role = roles;
    const groups = query.getAll("group");
    if (groups.length > 0) claims["webpubsub.group"] = groups;
    return signHs256(claims, this.options.accessKey);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      // Keep reading (and discarding) so the 413 can still be sent on this connection.
      if (size > limit) {
        chunks.length = 0;
        reject(new RestError(413, "RequestEntityTooLarge", `Message exceeds ${limit} bytes.`));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

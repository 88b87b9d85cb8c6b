import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { InvocationContext } from "@azure/functions";
import { toErrorResponse } from "../shared/http/respond";
import { ROUTE_PREFIX, type HttpRouteDef, type RouteTable } from "../shared/http/routeTypes";
import {
  flattenHeaders,
  requestBody,
  sendWire,
  streamingRequest,
  toWireResponse,
  type WireResponse,
} from "./httpAdapter";
import { createLogger, type Logger } from "../shared/log";
import { functionsLogHandler } from "./log";
import { listen } from "./ports";
import { RouteMatcher } from "./routes";
import { describe, elapsed, TimerRunner } from "./timers";

/** The Functions host's default request body limit (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, 100 MB). */
export const DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024;

export interface LocalHostOptions {
  table: RouteTable;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  routePrefix?: string;
  logger?: Logger;
  maxBodyBytes?: number;
  /** Route as the real host is reported to: see RouteMatcher.match. Default: on, the stricter of the two. */
  decodeBeforeRoute?: boolean;
}

export interface LocalHost {
  /** Base URL without the route prefix, e.g. `http://127.0.0.1:7071`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves a route table over Node's http the way `func start` would: same routes, same handler
 * objects (`HttpRequest`, `InvocationContext`), same response serialisation, and its timers.
 */
export class LocalFunctionsHost implements LocalHost {
  private readonly server: Server;
  private readonly matcher: RouteMatcher<HttpRouteDef>;
  private readonly timers: TimerRunner;
  private readonly logger: Logger;
  private readonly inFlight = new Set<Promise<void>>();
  private boundPort = 0;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: LocalHostOptions) {
    assertUniqueNames(options.table);
    this.logger = options.logger ?? createLogger();
    this.matcher = new RouteMatcher(options.table.http, options.routePrefix ?? ROUTE_PREFIX);
    this.timers = new TimerRunner(options.table.timers, this.logger);
    this.server = createServer((req, res) => this.track(this.handle(req, res), res));
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const host = this.options.host ?? "127.0.0.1";
    return `http://${host.includes(":") ? `[${host}]` : host}:${this.boundPort}`;
  }

  async start(): Promise<void> {
    this.boundPort = await listen(
      this.server,
      this.options.port ?? 7071,
      this.options.host ?? "127.0.0.1",
      "functions host",
    );
    this.timers.start();
  }

  /** Stops timers, lets requests in progress finish, then drops every connection, idle or not. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      await this.timers.close();
      // Requests may still arrive on open keep-alive sockets while earlier ones finish.
      while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
      this.server.closeAllConnections();
      await closed;
    })();
    return this.closing;
  }

  /** Remembers a request until it is answered; nothing it throws may escape into the event loop. */
  private track(work: Promise<void>, res: ServerResponse): void {
    const guarded = work.catch((err) => {
      this.logger.log("error", "request handling failed", { error: describe(err) });
      res.destroy();
    });
    this.inFlight.add(guarded);
    void guarded.finally(() => this.inFlight.delete(guarded));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? "GET";
    const { pathname, pathAndQuery } = splitTarget(req.url ?? "/");
    // An aborted upload surfaces here; without a listener it would be an uncaught 'error'.
    req.on("error", (err) =>
      this.logger.log("debug", "request stream error", { method, path: pathname, error: err.message }),
    );
    res.on("error", (err) =>
      this.logger.log("debug", "response stream error", { method, path: pathname, error: err.message }),
    );

    let functionName: string | undefined;
    let wire: WireResponse;
    try {
      const match = this.matcher.match(method, pathname, {
        decodeBeforeRoute: this.options.decodeBeforeRoute ?? true,
      });
      if (match.kind !== "found") {
        wire = notFoundWire();
      } else {
        functionName = match.def.name;
        wire = await this.invoke(match.def, match.params, req, method, pathAndQuery);
      }
    } catch (err) {
      // A refused body (413), a client that went away mid-upload, or a failure of the host itself;
      // a handler's own errors are mapped in invoke.
      const log = res.destroyed
        ? undefined
        : (message: string) => this.logger.log("error", message, { method, path: pathname });
      wire = await toWireResponse(toErrorResponse(err, log));
    }
    if (res.destroyed) {
      this.logger.log("info", "request aborted by client", { method, path: pathname, ms: elapsed(started) });
      return;
    }

    // A body left unread (refused, or not needed) would have to be drained first: close instead.
    const closeConnection = this.closing !== undefined || !req.complete;
    try {
      sendWire(res, wire, closeConnection);
    } catch (err) {
      this.logger.log("error", "could not send response", { method, path: pathname, error: describe(err) });
      res.destroy();
    }
    // The path only: the query string may carry tokens.
    this.logger.log("info", "request", {
      method,
      path: pathname,
      status: wire.status,
      ms: elapsed(started),
      ...(functionName ? { function: functionName } : {}),
    });
  }

  private async invoke(
    def: HttpRouteDef,
    params: Record<string, string>,
    req: IncomingMessage,
    method: string,
    pathAndQuery: string,
  ): Promise<WireResponse> {
    const invocationId = randomUUID();
    const logFields = { function: def.name, invocationId };
    // As on Azure with HTTP streaming (functions/index.ts): the handler runs before the body is
    // read, and reads it itself, with its own limit.
    const request = streamingRequest({
      method,
      url: `${this.origin(req)}${pathAndQuery}`,
      headers: flattenHeaders(req.headers),
      params,
      body: requestBody(req, this.options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES),
    });
    const context = new InvocationContext({
      invocationId,
      functionName: def.name,
      logHandler: functionsLogHandler(this.logger, logFields),
      options: {
        trigger: { type: "httpTrigger", name: "request", methods: def.methods, route: def.route },
        return: { type: "http", name: "$return" },
      },
    });
    try {
      return await toWireResponse(await def.handler(request, context));
    } catch (err) {
      // A handler reading the body of a client that went away fails with it; that is no error of
      // ours (handle() logs the abort).
      const log = req.destroyed
        ? undefined
        : (message: string) => this.logger.log("error", message, logFields);
      return toWireResponse(toErrorResponse(err, log));
    }
  }

  /** The URL handlers see carries the Host the client used, like in Azure; a bogus one is replaced. */
  private origin(req: IncomingMessage): string {
    const host = req.headers.host;
    return host && /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(host)
      ? `http://${host}`
      : this.url;
  }
}

/**
 * What the Functions host answers when no function takes the request: an unknown path, a method
 * the route does not list, and HEAD on a GET-only route all get 404 with an empty body, never a
 * 405 (azure-functions-host #10098, #11625).
 */
function notFoundWire(): WireResponse {
  return { status: 404, headers: new Map(), body: Buffer.alloc(0) };
}

/** Function names identify functions (and timers' schedules) in a Functions app, so they must be unique. */
function assertUniqueNames(table: RouteTable): void {
  const seen = new Set<string>();
  for (const { name } of [...table.http, ...table.timers]) {
    if (seen.has(name.toLowerCase())) throw new Error(`route table: function name '${name}' is used twice`);
    seen.add(name.toLowerCase());
  }
}

/** Splits the request target without URL resolution, so `//x` or `..` cannot change the origin. */
function splitTarget(target: string): { pathname: string; pathAndQuery: string } {
  let pathAndQuery = target;
  if (/^https?:\/\//i.test(target)) {
    try {
      const url = new URL(target);
      pathAndQuery = `${url.pathname}${url.search}`;
    } catch {
      pathAndQuery = "/";
    }
  }
  if (!pathAndQuery.startsWith("/")) pathAndQuery = `/${pathAndQuery}`;
  const q = pathAndQuery.indexOf("?");
  return { pathname: q < 0 ? pathAndQuery : pathAndQuery.slice(0, q), pathAndQuery };
}

export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const host = new LocalFunctionsHost(options);
  await host.start();
  return host;
}

/**
 * The Web PubSub event handler, as a plain HTTP function speaking CloudEvents (binary mode), so it
 * needs no Functions extension and runs the same against the emulator. Blocking `connect` is where
 * single use and deadlines are enforced; `disconnected` is terminal; `report` carries byte counts,
 * once per connection (a repeat gets 409, and Web PubSub drops the client).
 */
import type { HttpRequest, HttpResponseInit } from "@azure/functions";
import { z } from "zod";
import { Errors } from "../errors";
import type { StreamService } from "../streams/service";
import type { RelayEventAuthenticator } from "../auth";
import { readBody, refuseDeclaredOver } from "../http/body";
import { parseJson } from "../http/json";
import { errorResponse } from "../http/respond";

export interface RelayEventsDeps {
  service: StreamService;
  guard: Pick<RelayEventAuthenticator, "abuseProtection" | "authenticate">;
  hub: string;
}

/**
 * The events this handler needs from Web PubSub: what the hub's event handler (infra, the local
 * stack) subscribes to. `connected` is left out: nothing here uses it, and each event is a call.
 */
export const RELAY_EVENT_SUBSCRIPTION = {
  systemEvents: ["connect", "disconnected"],
  userEventPattern: "report",
} as const;

/**
 * The largest event body Web PubSub delivers. A user event (`report`) carries one client message,
 * and Web PubSub's messages and WebSocket frames are at most 1 MB (docs/webpubsub-protocol.md §5;
 * learn.microsoft.com/azure/azure-web-pubsub/concept-service-internals: "maximum size 1 MB"). A
 * `connect` event carries the client's handshake (claims, query, headers), which the service
 * bounds far below that; `disconnected` carries a short reason. 1 MiB, the larger reading of
 * "1 MB", refuses nothing Web PubSub can send and bounds what anyone else can.
 */
export const MAX_EVENT_BYTES = 1024 * 1024;
const disconnectedBody = z.object({ reason: z.string().max(4096).optional() }).loose();
const reportBody = z.object({ bytesSent: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) }).loose();

/**
 * The abuse-protection handshake (OPTIONS; anonymous by design of the protocol). It needs the
 * allowed origins only, so the route answers it from the settings without building the services.
 */
export function abuseProtectionResponse(
  request: HttpRequest,
  guard: Pick<RelayEventAuthenticator, "abuseProtection">,
): HttpResponseInit {
  return { status: 200, headers: guard.abuseProtection(request.headers) };
}

export class RelayEventsApi {
  constructor(private readonly deps: RelayEventsDeps) {}

  async post(request: HttpRequest): Promise<HttpResponseInit> {
    // The route is anonymous: refuse a declared size first, and read no byte of a body before the
    // caller has proven it is Web PubSub (the signature covers the connection id, not the body).
    refuseDeclaredOver(request, MAX_EVENT_BYTES);
    const type = request.headers.get("ce-type");
    const connectionId = request.headers.get("ce-connectionid");
    const hub = request.headers.get("ce-hub");
    if (!type || !connectionId) {
      throw Errors.badRequest("InvalidCloudEvent", "ce-type and ce-connectionId headers are required.");
    }
    await this.deps.guard.authenticate(request.headers);
    if (hub !== null && hub.toLowerCase() !== this.deps.hub.toLowerCase()) {
      throw Errors.badRequest("UnknownHub", `Events of hub '${hub}' are not handled here.`);
    }
    const userId = request.headers.get("ce-userid") ?? undefined;
    const body = (await readBody(request, MAX_EVENT_BYTES)).toString("utf8");

    switch (type) {
      case "azure.webpubsub.sys.connect": {
        const outcome = await this.deps.service.onConnect(userId, connectionId);
        if (!outcome.accept) {
          // The status becomes the client's upgrade response; the reason stays in our log only.
          return errorResponse(Errors.unauthenticated("The relay credential is not valid for this stream."));
        }
        return { status: 200, jsonBody: { userId: outcome.userId, groups: [outcome.group] } };
      }
      case "azure.webpubsub.sys.connected":
        return { status: 204 };
      case "azure.webpubsub.sys.disconnected": {
        const parsed = disconnectedBody.safeParse(parseJsonOr(body, {}));
        const reason = parsed.success ? parsed.data.reason : undefined;
        await this.deps.service.onDisconnected(userId, connectionId, reason);
        return { status: 204 };
      }
      case "azure.webpubsub.user.report": {
        const parsed = reportBody.safeParse(parseJsonOr(body, undefined));
        if (!parsed.success)
          throw Errors.badRequest("InvalidReport", 'report needs {"bytesSent": integer >= 0}.');
        const outcome = await this.deps.service.onReport(userId, connectionId, parsed.data.bytesSent);
        // Web PubSub drops a client whose user event fails: a connection that reports again is
        // spending our invocations, and each report costs a table read and write.
        if (!outcome.accepted)
          throw Errors.conflict("ReportRefused", `The report was refused: ${outcome.reason}.`);
        return { status: 204 };
      }
      default:
        throw Errors.badRequest("UnsupportedEvent", `Event type '${type.slice(0, 100)}' is not handled.`);
    }
  }
}

/** The event's JSON, or `fallback` when it is empty, malformed, or too deep or wide to look at. */
function parseJsonOr(text: string, fallback: unknown): unknown {
  if (text.trim() === "") return fallback;
  try {
    return parseJson(text);
  } catch {
    return fallback;
  }
}

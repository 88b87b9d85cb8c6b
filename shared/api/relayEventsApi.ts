/**
 * The Web PubSub event handler, as a plain HTTP function speaking CloudEvents (binary mode), so it
 * needs no Functions extension and runs the same against the emulator. Blocking `connect` is where
 * single use and deadlines are enforced; `disconnected` is terminal; `report` carries byte counts.
 */
import type { HttpRequest, HttpResponseInit } from "@azure/functions";
import { z } from "zod";
import { Errors } from "../errors";
import type { StreamService } from "../streams/service";
import type { RelayEventAuthenticator } from "../auth";
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

const MAX_EVENT_BYTES = 64 * 1024;
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
    const body = await readBody(request);

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
        await this.deps.service.onReport(userId, parsed.data.bytesSent);
        return { status: 204 };
      }
      default:
        throw Errors.badRequest("UnsupportedEvent", `Event type '${type.slice(0, 100)}' is not handled.`);
    }
  }
}

async function readBody(request: HttpRequest): Promise<string> {
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > MAX_EVENT_BYTES)
    throw Errors.payloadTooLarge(`Events are limited to ${MAX_EVENT_BYTES} bytes.`);
  return bytes.toString("utf8");
}

function parseJsonOr(text: string, fallback: unknown): unknown {
  if (text.trim() === "") return fallback;
  try {
    return JSON.parse(text);
  } catch {
    return fallback;
  }
}

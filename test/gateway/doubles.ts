/**
 * Test doubles for the gateway's routing, isolation and authentication (the real ones are
 * client/gateway/hostname.ts, isolation.ts and auth.ts): the server's tests check what the server
 * does with their answers, not the answers.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { AuthDecision, GatewayAuth, GatewayRules } from "../../client/gateway/server";
import type { DeviceTarget } from "../../client/sdk/service";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-authorization",
]);

function copy(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

export const rulesDouble: GatewayRules = {
  parseHost(hostHeader, baseDomain) {
    const host = hostHeader.toLowerCase().replace(/:\d+$/, "");
    const suffix = `.${baseDomain}`;
    if (!host.endsWith(suffix)) return undefined;
    const label = host.slice(0, -suffix.length);
    return /^[a-z0-9-]{1,63}$/.test(label) ? label : undefined;
  },
  toDeviceHeaders(incoming, ctx) {
    const out = copy(incoming);
    delete out.authorization;
    delete out.cookie;
    return {
      ...out,
      host: ctx.hostHeader,
      "x-forwarded-for": ctx.remoteAddress,
      "x-forwarded-proto": ctx.proto,
      "x-forwarded-host": ctx.host,
    };
  },
  fromDeviceHeaders: (headers) => copy(headers),
  originAllowed: (origin, host, proto) => origin === `${proto}://${host}`,
};

/** Requests carry `Authorization: Bearer <label>` for the one label they may reach. */
export function authDouble(targets: Record<string, DeviceTarget>): GatewayAuth {
  return {
    authenticate: (req: IncomingMessage, label: string): Promise<AuthDecision> => {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
      const target = targets[label];
      if (bearer === undefined)
        return Promise.resolve({ kind: "deny", status: 401, code: "TicketRequired", message: "no ticket" });
      if (bearer !== label || !target)
        return Promise.resolve({
          kind: "deny",
          status: 403,
          code: "TicketMismatch",
          message: "other device",
        });
      return Promise.resolve({ kind: "allow", target });
    },
  };
}

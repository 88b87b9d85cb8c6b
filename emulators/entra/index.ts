/**
 * A local Microsoft Entra ID for the keyless path (docs/entra-emulator.md): one tenant, an HTTPS
 * authority (OIDC discovery v1 and v2, JWKS, the client-credentials token endpoint) and a plain-http
 * App Service managed-identity endpoint (IDENTITY_ENDPOINT + X-IDENTITY-HEADER), so
 * `DefaultAzureCredential`, `ClientSecretCredential` and MSAL run unchanged against it.
 */
import { randomUUID, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import {
  type IssuedToken,
  type LocalApplication,
  type LocalPrincipal,
  TokenIssuer,
  newSigningKey,
  resourceOfScope,
} from "./tokens";

export type { IssuedToken, LocalApplication, LocalPrincipal, TokenVersion } from "./tokens";
export { resourceOfScope } from "./tokens";

export interface EntraEmulatorOptions {
  host?: string;
  /** HTTPS authority port; 0 (default) picks a free one. */
  port?: number;
  /** Managed-identity endpoint port (plain http); 0 (default) picks a free one. */
  identityPort?: number;
  /** Server certificate for the authority, issued by the local CA. */
  tls: { key: string; cert: string };
  /** Default: a random GUID. */
  tenantId?: string;
  /** Every principal of the tenant: app registrations (with a secret) and managed identities. */
  principals: readonly LocalPrincipal[];
  applications?: readonly LocalApplication[];
  /**
   * The managed identities the identity endpoint serves (by client id), with the first as the
   * default when a request names none. Empty: the endpoint answers 400 to everything.
   */
  managedIdentities?: readonly string[];
  log?: (line: string) => void;
}

export interface EntraEmulator {
  readonly tenantId: string;
  /** `https://host:port`: the authority host (`AZURE_AUTHORITY_HOST`). */
  readonly authorityHost: string;
  /** `http://host:port/msi/token`: `IDENTITY_ENDPOINT`. */
  readonly identityEndpoint: string;
  /** `IDENTITY_HEADER`: the secret the platform gives the app (random per start). */
  readonly identityHeader: string;
  readonly issuer: TokenIssuer;
  /** Requests each endpoint answered with a token, for tests that prove which path was used. */
  readonly hits: { managedIdentity: number; clientCredentials: number };
  /** Mints a token directly, as Azure does for a service's own identity (event-handler auth). */
  issue(principal: LocalPrincipal, resource: string): Promise<IssuedToken>;
  close(): Promise<void>;
}

const MAX_FORM_BYTES = 64 * 1024;
const IDENTITY_API_VERSION = "2019-08-01";

class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly aadsts: number,
    message: string,
  ) {
    super(message);
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

/** Entra's error body: `error`, `error_description` starting with AADSTSnnnn, `error_codes`, ids. */
function sendOAuthError(res: http.ServerResponse, err: OAuthError): void {
  const traceId = randomUUID();
  sendJson(res, err.status, {
    error: err.error,
    error_description: `AADSTS${err.aadsts}: ${err.message} Trace ID: ${traceId}`,
    error_codes: [err.aadsts],
    timestamp: new Date()
      .toISOString()
      .replace("T", " ")
      .replace(/\.\d+Z$/, "Z"),
    trace_id: traceId,
    correlation_id: randomUUID(),
  });
}

function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) {
        reject(new OAuthError(400, "invalid_request", 900144, "The request body is too large."));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))));
    req.on("error", reject);
  });
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  // Length is not secret here (a fixed-format generated value); the content is.
  return a.length === b.length && timingSafeEqual(a, b);
}

async function listen(server: http.Server, port: number, host: string): Promise<number> {
  server.listen(port, host);
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

export async function startEntraEmulator(options: EntraEmulatorOptions): Promise<EntraEmulator> {
  const host = options.host ?? "127.0.0.1";
  const tenantId = options.tenantId ?? randomUUID();
  const log = options.log ?? (() => undefined);
  const hostForUrl = host.includes(":") ? `[${host}]` : host;
  let authorityHost = "";
  const issuer = new TokenIssuer(
    await newSigningKey(),
    tenantId,
    () => authorityHost,
    options.applications ?? [],
  );
  const hits = { managedIdentity: 0, clientCredentials: 0 };
  const identityHeader = randomUUID();
  const byClientId = (id: string) =>
    options.principals.find((p) => p.clientId.toLowerCase() === id.toLowerCase());

  function discovery(version: 1 | 2): Record<string, unknown> {
    const base = `${authorityHost}/${tenantId}`;
    const v = version === 2 ? "/v2.0" : "";
    return {
      issuer: version === 2 ? issuer.v2Issuer() : issuer.v1Issuer(),
      authorization_endpoint: `${base}/oauth2${v}/authorize`,
      token_endpoint: `${base}/oauth2${v}/token`,
      jwks_uri: `${base}/discovery${v}/keys`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "client_secret_basic"],
      response_types_supported: ["code", "id_token", "code id_token", "token id_token"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      tenant_region_scope: "EU",
      cloud_instance_name: "microsoftonline.com",
      ...(version === 2 ? {} : { resource: "00000002-0000-0000-c000-000000000000" }),
    };
  }

  /** The client-credentials grant, v1 (`resource`) or v2 (`scope`). */
  async function token(req: http.IncomingMessage, version: 1 | 2): Promise<Record<string, unknown>> {
    const form = await readForm(req);
    let clientId = form.get("client_id") ?? "";
    let secret = form.get("client_secret") ?? "";
    const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    if (basic) {
      const [id, pw] = Buffer.from(basic, "base64").toString("utf8").split(":");
      clientId = decodeURIComponent(id ?? "");
      secret = decodeURIComponent(pw ?? "");
    }
    if (form.get("grant_type") !== "client_credentials") {
      throw new OAuthError(
        400,
        "unsupported_grant_type",
        70003,
        "The app requested an unsupported grant type.",
      );
    }
    if (!clientId)
      throw new OAuthError(400, "invalid_request", 900144, "The request body must contain client_id.");
    const target = version === 2 ? form.get("scope") : form.get("resource");
    if (!target) {
      throw new OAuthError(
        400,
        "invalid_request",
        900144,
        `The request body must contain the '${version === 2 ? "scope" : "resource"}' parameter.`,
      );
    }
    const resource = version === 2 ? target.split(" ").find((s) => /\/\.default$/i.test(s)) : target;
    if (resource === undefined) {
      throw new OAuthError(
        400,
        "invalid_scope",
        1002012,
        "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
      );
    }
    const principal = byClientId(clientId);
    if (!principal) {
      throw new OAuthError(
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${clientId}' was not found in the directory.`,
      );
    }
    if (principal.secret === undefined || !sameSecret(secret, principal.secret)) {
      throw new OAuthError(401, "invalid_client", 7000215, "Invalid client secret provided.");
    }
    const issued = await issuer.issue({ principal, resource });
    hits.clientCredentials++;
    log(`token (client credentials, v${version} endpoint) for ${clientId} -> ${resourceOfScope(resource)}`);
    return {
      token_type: "Bearer",
      expires_in: issued.expiresOn - Math.floor(Date.now() / 1000),
      ext_expires_in: issued.expiresOn - Math.floor(Date.now() / 1000),
      access_token: issued.token,
      ...(version === 1 ? { resource: resourceOfScope(resource), expires_on: String(issued.expiresOn) } : {}),
    };
  }

  async function authority(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://entra");
    const [tenant, ...rest] = url.pathname.split("/").filter((s) => s.length > 0);
    const path = rest.join("/");
    const known = tenant === tenantId || tenant === "common" || tenant === "organizations";
    if (!known) {
      throw new OAuthError(400, "invalid_tenant", 90002, `Tenant '${tenant ?? ""}' not found.`);
    }
    const route = `${req.method ?? "GET"} ${path}`;
    switch (route) {
      case "GET v2.0/.well-known/openid-configuration":
        return sendJson(res, 200, discovery(2));
      case "GET .well-known/openid-configuration":
        return sendJson(res, 200, discovery(1));
      case "GET discovery/v2.0/keys":
      case "GET discovery/keys":
        return sendJson(res, 200, issuer.jwks);
      case "POST oauth2/v2.0/token":
        return sendJson(res, 200, await token(req, 2));
      case "POST oauth2/token":
        return sendJson(res, 200, await token(req, 1));
      default:
        return sendJson(res, 404, { error: "not_found", error_description: `No endpoint ${route}.` });
    }
  }

  /** App Service's identity endpoint (api-version 2019-08-01), as MSAL's AppService source calls it. */
  async function managedIdentity(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://identity");
    const fail = (status: number, message: string) =>
      sendJson(res, status, { statusCode: status, message, correlationId: randomUUID() });
    if (url.pathname !== "/msi/token") return fail(404, "Not found.");
    if (req.method !== "GET") return fail(405, "Only GET is supported.");
    if (!sameSecret(req.headers["x-identity-header"]?.toString() ?? "", identityHeader)) {
      return fail(401, "The X-IDENTITY-HEADER header is missing or wrong.");
    }
    if (url.searchParams.get("api-version") !== IDENTITY_API_VERSION) {
      return fail(400, `api-version must be ${IDENTITY_API_VERSION}.`);
    }
    const resource = url.searchParams.get("resource");
    if (!resource) return fail(400, "The resource parameter is required.");
    const identities = options.managedIdentities ?? [];
    const wanted = url.searchParams.get("client_id") ?? url.searchParams.get("principal_id");
    const clientId = wanted
      ? identities.find((id) => {
          const p = byClientId(id);
          return p && (p.clientId === wanted || p.objectId === wanted);
        })
      : identities[0];
    const principal = clientId === undefined ? undefined : byClientId(clientId);
    if (!principal) return fail(400, "No managed identity found for the given id.");
    const issued = await issuer.issue({ principal, resource });
    hits.managedIdentity++;
    log(`token (managed identity) for ${principal.clientId} -> ${resourceOfScope(resource)}`);
    return sendJson(res, 200, {
      access_token: issued.token,
      expires_on: String(issued.expiresOn),
      resource: resourceOfScope(resource),
      token_type: "Bearer",
      client_id: principal.clientId,
    });
  }

  const guard =
    (handler: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>) =>
    (req: http.IncomingMessage, res: http.ServerResponse) => {
      handler(req, res).catch((err: unknown) => {
        if (err instanceof OAuthError) return sendOAuthError(res, err);
        log(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        sendJson(res, 500, { error: "server_error", error_description: "An internal error occurred." });
      });
    };

  const authorityServer = https.createServer(
    { key: options.tls.key, cert: options.tls.cert },
    guard(authority),
  );
  const identityServer = http.createServer(guard(managedIdentity));
  const close = async () => {
    const closed = [authorityServer, identityServer]
      .filter((s) => s.listening)
      .map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    authorityServer.closeAllConnections();
    identityServer.closeAllConnections();
    await Promise.all(closed);
  };
  let identityPort: number;
  try {
    authorityHost = `https://${hostForUrl}:${await listen(authorityServer, options.port ?? 0, host)}`;
    identityPort = await listen(identityServer, options.identityPort ?? 0, host);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    tenantId,
    authorityHost,
    identityEndpoint: `http://${hostForUrl}:${identityPort}/msi/token`,
    identityHeader,
    issuer,
    hits,
    issue: (principal, resource) => issuer.issue({ principal, resource }),
    close,
  };
}

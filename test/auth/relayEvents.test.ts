import { randomUUID } from "node:crypto";
import { HttpRequest } from "@azure/functions";
import { ApiError } from "../../shared/errors";
import { entraEndpoints, JwtVerifier, remoteJwks } from "../../shared/auth/jwt";
import { RelayEventAuthenticator, signConnectionId } from "../../shared/auth/relayEvents";
import { JwksServer, newSigningKey, signJwt, type SigningKey } from "./support/jwks";

const ORIGIN = "devstreams.webpubsub.azure.com";
const PRIMARY = "primary-access-key-0123456789abcdefghijklmnopqrstuv";
const SECONDARY = "secondary-access-key-0123456789abcdefghijklmnopqrst";
const CONNECTION_ID = "conn-" + randomUUID();
const TENANT = randomUUID();
const WPS_OID = randomUUID(); // Web PubSub's managed identity: object id
const WPS_CLIENT_ID = randomUUID(); // ... and client (app) id
const AUDIENCE = "api://device-streams-events";

let key: SigningKey;
let server: JwksServer;
let issuers: readonly string[];
let keyless: RelayEventAuthenticator;
const keyed = new RelayEventAuthenticator({ allowedOrigins: [ORIGIN], accessKeys: [PRIMARY, SECONDARY] });

function eventRequest(headers: Record<string, string>, method = "POST"): HttpRequest {
  return new HttpRequest({
    method,
    url: "http://localhost/api/relay/events",
    headers: {
      "ce-specversion": "1.0",
      "ce-awpsversion": "1.0",
      "ce-type": "azure.webpubsub.sys.connect",
      "ce-hub": "streams",
      "webhook-request-origin": ORIGIN,
      ...headers,
    },
  });
}

async function refusal(auth: RelayEventAuthenticator, headers: Record<string, string>): Promise<ApiError> {
  const err: unknown = await auth.authenticate(eventRequest(headers).headers).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(err)}`);
  return err;
}

const miClaims = () => ({
  iss: issuers[0],
  aud: AUDIENCE,
  oid: WPS_OID,
  appid: WPS_CLIENT_ID,
  tid: TENANT,
  idtyp: "app",
});

beforeAll(async () => {
  key = await newSigningKey();
  server = new JwksServer([key]);
  const jwksUri = await server.start();
  issuers = entraEndpoints({ tenantId: TENANT, jwksUri }).issuers;
  keyless = new RelayEventAuthenticator({
    allowedOrigins: [ORIGIN],
    accessKeys: [],
    managedIdentity: {
      principalId: WPS_OID,
      verifier: new JwtVerifier({ keys: remoteJwks(jwksUri), issuers, audiences: [AUDIENCE] }),
    },
  });
});

afterAll(async () => {
  await server.close();
});

describe("abuse protection (OPTIONS)", () => {
  it("allows a configured origin, case-insensitively", () => {
    const headers = keyed.abuseProtection(
      eventRequest({ "webhook-request-origin": ORIGIN.toUpperCase() }, "OPTIONS").headers,
    );
    expect(headers["WebHook-Allowed-Origin"]).toBe(ORIGIN.toUpperCase());
    expect(headers["WebHook-Allowed-Rate"]).toBe("*");
  });

  it("refuses another origin with 403 and without WebHook-Allowed-Origin", () => {
    expect(() =>
      keyed.abuseProtection(
        eventRequest({ "webhook-request-origin": "evil.webpubsub.azure.com" }, "OPTIONS").headers,
      ),
    ).toThrow(expect.objectContaining({ statusCode: 403 }));
  });

  it("refuses a missing origin with 400", () => {
    const request = new HttpRequest({ method: "OPTIONS", url: "http://localhost/api/relay/events" });
    expect(() => keyed.abuseProtection(request.headers)).toThrow(
      expect.objectContaining({ statusCode: 400, message: "The WebHook-Request-Origin header is required." }),
    );
  });

  it("refuses everything when no origin is configured", () => {
    const none = new RelayEventAuthenticator({ allowedOrigins: [], accessKeys: [PRIMARY] });
    expect(() => none.abuseProtection(eventRequest({}, "OPTIONS").headers)).toThrow(
      expect.objectContaining({ statusCode: 403 }),
    );
  });
});

describe("ce-signature", () => {
  it("signs as Web PubSub does (HMAC-SHA256 known answer)", () => {
    expect(signConnectionId("key", "The quick brown fox jumps over the lazy dog")).toBe(
      "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
    );
  });

  it.each([
    ["the primary key", () => signConnectionId(PRIMARY, CONNECTION_ID)],
    ["the secondary key", () => signConnectionId(SECONDARY, CONNECTION_ID)],
    [
      "both keys, comma-separated",
      () => `${signConnectionId(PRIMARY, CONNECTION_ID)},${signConnectionId(SECONDARY, CONNECTION_ID)}`,
    ],
    [
      "a rotated-out key and a current one",
      () => `${signConnectionId("old-key", CONNECTION_ID)}, ${signConnectionId(SECONDARY, CONNECTION_ID)}`,
    ],
    [
      "upper-case hex",
      () => signConnectionId(PRIMARY, CONNECTION_ID).toUpperCase().replace("SHA256", "sha256"),
    ],
  ])("accepts a signature with %s", async (_label, signature) => {
    const caller = await keyed.authenticate(
      eventRequest({ "ce-signature": signature(), "ce-connectionId": CONNECTION_ID }).headers,
    );
    expect(caller).toEqual({ method: "signature" });
  });

  it.each<[string, Record<string, string>, RegExp]>([
    [
      "a wrong key",
      { "ce-signature": signConnectionId("wrong", CONNECTION_ID), "ce-connectionId": CONNECTION_ID },
      /does not match/,
    ],
    [
      "another connection's signature",
      { "ce-signature": signConnectionId(PRIMARY, "other"), "ce-connectionId": CONNECTION_ID },
      /does not match/,
    ],
    [
      "no connection id",
      { "ce-signature": signConnectionId(PRIMARY, CONNECTION_ID) },
      /without ce-connectionId/,
    ],
    [
      "a bare hex value",
      { "ce-signature": signConnectionId(PRIMARY, CONNECTION_ID).slice(7), "ce-connectionId": CONNECTION_ID },
      /malformed/,
    ],
    ["sha1", { "ce-signature": "sha1=" + "0".repeat(40), "ce-connectionId": CONNECTION_ID }, /malformed/],
    [
      "a truncated value",
      {
        "ce-signature": signConnectionId(PRIMARY, CONNECTION_ID).slice(0, -2),
        "ce-connectionId": CONNECTION_ID,
      },
      /malformed/,
    ],
    [
      "one good and one malformed value",
      {
        "ce-signature": `${signConnectionId(PRIMARY, CONNECTION_ID)},junk`,
        "ce-connectionId": CONNECTION_ID,
      },
      /malformed/,
    ],
    ["an empty value", { "ce-signature": "", "ce-connectionId": CONNECTION_ID }, /malformed/],
    [
      "a huge header",
      {
        "ce-signature": `${signConnectionId(PRIMARY, CONNECTION_ID)},`.repeat(100),
        "ce-connectionId": CONNECTION_ID,
      },
      /malformed/,
    ],
  ])("refuses %s with 401", async (_label, headers, message) => {
    const err = await refusal(keyed, headers);
    expect(err.statusCode).toBe(401);
    expect(err.message).toMatch(message);
  });

  it("refuses a signature when no access key is configured (keyless)", async () => {
    const err = await refusal(keyless, {
      "ce-signature": signConnectionId(PRIMARY, CONNECTION_ID),
      "ce-connectionId": CONNECTION_ID,
    });
    expect(err.statusCode).toBe(401);
    expect(err.message).toMatch(/no Web PubSub access key is configured/);
  });
});

describe("managed-identity token (keyless Web PubSub)", () => {
  const bearer = async (claims: Record<string, unknown>, expiresIn?: number) => ({
    authorization: `Bearer ${await signJwt(key, claims, expiresIn === undefined ? {} : { expiresIn })}`,
    "ce-connectionId": CONNECTION_ID,
  });

  it("accepts Web PubSub's token, pinned by oid", async () => {
    const caller = await keyless.authenticate(eventRequest(await bearer(miClaims())).headers);
    expect(caller).toEqual({ method: "managedIdentity", principalId: WPS_OID });
  });

  it("accepts the pin by app id (v2 azp) when configured with the client id", async () => {
    const byClientId = new RelayEventAuthenticator({
      allowedOrigins: [ORIGIN],
      accessKeys: [],
      managedIdentity: {
        principalId: WPS_CLIENT_ID.toUpperCase(),
        verifier: new JwtVerifier({ keys: remoteJwks(server.uri), issuers, audiences: [AUDIENCE] }),
      },
    });
    const { appid: _appid, ...claims } = miClaims();
    const caller = await byClientId.authenticate(
      eventRequest(await bearer({ ...claims, oid: randomUUID(), azp: WPS_CLIENT_ID, iss: issuers[1] }))
        .headers,
    );
    expect(caller.method).toBe("managedIdentity");
  });

  it("refuses a valid token from the right tenant and audience but another identity", async () => {
    const err = await refusal(
      keyless,
      await bearer({ ...miClaims(), oid: randomUUID(), appid: randomUUID() }),
    );
    expect([err.statusCode, err.message]).toEqual([401, "token is not from the Web PubSub identity"]);
  });

  it.each<[string, Record<string, unknown>, number | undefined, string]>([
    [
      "a wrong audience",
      { aud: "https://management.azure.com/" },
      undefined,
      "token audience is not accepted",
    ],
    [
      "a wrong issuer",
      { iss: `https://sts.windows.net/${randomUUID()}/` },
      undefined,
      "token issuer is not accepted",
    ],
    ["an expired token", {}, -3600, "token expired"],
  ])("refuses %s", async (_label, overrides, expiresIn, message) => {
    const err = await refusal(keyless, await bearer({ ...miClaims(), ...overrides }, expiresIn));
    expect([err.statusCode, err.message]).toEqual([401, message]);
  });

  it("refuses a forged token", async () => {
    const rogue = await newSigningKey();
    const token = await signJwt({ ...rogue, kid: key.kid }, miClaims());
    const err = await refusal(keyless, { authorization: `Bearer ${token}` });
    expect([err.statusCode, err.message]).toEqual([401, "token signature is invalid"]);
  });

  it("refuses a bearer token when no Web PubSub identity is configured", async () => {
    const err = await refusal(keyed, await bearer(miClaims()));
    expect(err.statusCode).toBe(401);
    expect(err.message).toMatch(/no Web PubSub identity is configured/);
  });

  it("refuses another scheme in Authorization", async () => {
    const err = await refusal(keyless, { authorization: "SharedAccessSignature sr=x&sig=y&se=1&skn=z" });
    expect(err.message).toMatch(/expected 'Bearer <token>'/);
  });

  it("accepts either proof when both are configured, and reports every failed one", async () => {
    const both = new RelayEventAuthenticator({
      allowedOrigins: [ORIGIN],
      accessKeys: [PRIMARY],
      managedIdentity: {
        principalId: WPS_OID,
        verifier: new JwtVerifier({ keys: remoteJwks(server.uri), issuers, audiences: [AUDIENCE] }),
      },
    });
    const badSignature = { "ce-signature": signConnectionId("wrong", CONNECTION_ID) };
    const good = await bearer(miClaims());
    expect((await both.authenticate(eventRequest({ ...good, ...badSignature }).headers)).method).toBe(
      "managedIdentity",
    );
    const err = await refusal(both, {
      ...(await bearer({ ...miClaims(), oid: randomUUID(), appid: randomUUID() })),
      ...badSignature,
    });
    expect(err.message).toBe("ce-signature does not match; token is not from the Web PubSub identity");
  });
});

it("refuses a request with neither signature nor token", async () => {
  for (const auth of [keyed, keyless]) {
    const err = await refusal(auth, { "ce-connectionId": CONNECTION_ID });
    expect([err.statusCode, err.message]).toEqual([401, "missing ce-signature or Authorization header"]);
  }
});

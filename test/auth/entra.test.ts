import { createHmac, randomUUID } from "node:crypto";
import { HttpRequest } from "@azure/functions";
import { ApiError } from "../../shared/errors";
import { errorResponse } from "../../shared/http/respond";
import { AuthChain } from "../../shared/auth/chain";
import { EntraAuthenticator } from "../../shared/auth/entra";
import { entraEndpoints, JwtVerifier, remoteJwks } from "../../shared/auth/jwt";
import { jose } from "../../shared/auth/jose";
import { openedBy, type EntraPrincipal } from "../../shared/auth/principal";
import { b64url, JwksServer, newSigningKey, signJwt, type SigningKey } from "./support/jwks";

const TENANT = randomUUID();
const CLIENT_ID = randomUUID();
const AUDIENCES = [`api://${CLIENT_ID}`, CLIENT_ID];
const CALLER_OID = randomUUID();
const CALLER_APP = randomUUID();

let tenantKey: SigningKey;
let rogueKey: SigningKey;
let server: JwksServer;
let endpoints: { jwksUri: string; issuers: readonly string[] };
let chain: AuthChain<EntraPrincipal>;

function request(authorization?: string): HttpRequest {
  return new HttpRequest({
    method: "GET",
    url: "http://localhost/api/devices/d1/streams",
    headers: authorization === undefined ? {} : { authorization },
  });
}

async function authenticate(token: string): Promise<EntraPrincipal> {
  return chain.authenticate(request(`Bearer ${token}`).headers);
}

async function rejection(token: string): Promise<ApiError> {
  const err: unknown = await authenticate(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(err)}`);
  // The token never echoes back, whatever the reason.
  expect(err.message).not.toContain(token);
  expect(err.message).not.toContain(token.split(".")[2] || "\u0000");
  return err;
}

const v2Issuer = () => endpoints.issuers[1]!;
const goodClaims = () => ({
  iss: v2Issuer(),
  aud: AUDIENCES[0],
  oid: CALLER_OID,
  azp: CALLER_APP,
  tid: TENANT,
  roles: ["Streams.Operator"],
});

beforeAll(async () => {
  tenantKey = await newSigningKey();
  rogueKey = await newSigningKey();
  server = new JwksServer([tenantKey]);
  const jwksUri = await server.start();
  endpoints = entraEndpoints({ tenantId: TENANT, jwksUri });
  const verifier = new JwtVerifier({
    keys: remoteJwks(jwksUri),
    issuers: endpoints.issuers,
    audiences: AUDIENCES,
  });
  chain = new AuthChain([
    new EntraAuthenticator({
      verifier,
      roles: [
        { role: "Streams.Operator", devices: ["*"], streams: ["*"] },
        { role: "Streams.Reader", devices: ["*"], streams: ["*"], actions: ["list", "show"] },
      ],
    }),
  ]);
});

afterAll(async () => {
  await server.close();
});

describe("entraEndpoints", () => {
  it("derives the v1 and v2 issuers and the tenant key set", () => {
    expect(entraEndpoints({ tenantId: "t" })).toEqual({
      jwksUri: "https://login.microsoftonline.com/t/discovery/v2.0/keys",
      issuers: ["https://sts.windows.net/t/", "https://login.microsoftonline.com/t/v2.0"],
    });
    expect(
      entraEndpoints({ tenantId: "t", authorityHost: "https://login.example/", issuer: "https://iss/" }),
    ).toEqual({ jwksUri: "https://login.example/t/discovery/v2.0/keys", issuers: ["https://iss/"] });
  });
});

describe("Entra ID bearer tokens, validated against a JWKS served over HTTP", () => {
  it("accepts a valid v2 token and builds the principal", async () => {
    const principal = await authenticate(await signJwt(tenantKey, goodClaims()));
    expect(principal).toMatchObject({
      kind: "entra",
      objectId: CALLER_OID,
      appId: CALLER_APP,
      roles: ["Streams.Operator"],
    });
    expect(principal.grants.map((g) => g.source)).toEqual(["app role 'Streams.Operator'"]);
    expect(openedBy(principal)).toBe(CALLER_OID);
  });

  it("accepts a v1 token (sts.windows.net issuer, appid, bare client-id audience)", async () => {
    const { azp: _azp, ...claims } = goodClaims();
    const token = await signJwt(tenantKey, {
      ...claims,
      iss: `https://sts.windows.net/${TENANT}/`,
      aud: CLIENT_ID,
      appid: CALLER_APP,
      roles: ["Streams.Reader", "Unrelated.Role"],
    });
    const principal = await authenticate(token);
    expect(principal.appId).toBe(CALLER_APP);
    expect(principal.roles).toEqual(["Streams.Reader", "Unrelated.Role"]);
    expect(principal.grants).toHaveLength(1);
  });

  it("refuses an expired token", async () => {
    const err = await rejection(await signJwt(tenantKey, goodClaims(), { expiresIn: -3600 }));
    expect(err.statusCode).toBe(401);
    expect(err.message).toBe("token expired");
  });

  it("refuses a token signed by another key with the tenant's kid (forged)", async () => {
    const forged = await signJwt({ ...rogueKey, kid: tenantKey.kid }, goodClaims());
    const err = await rejection(forged);
    expect(err.statusCode).toBe(401);
    expect(err.message).toBe("token signature is invalid");
  });

  it("refuses a token whose key is not in the tenant's set", async () => {
    const err = await rejection(await signJwt(rogueKey, goodClaims()));
    expect(err.statusCode).toBe(401);
    expect(err.message).toBe("token is not signed by a key of the tenant");
  });

  it("refuses a wrong audience", async () => {
    const err = await rejection(await signJwt(tenantKey, { ...goodClaims(), aud: "api://someone-else" }));
    expect([err.statusCode, err.message]).toEqual([401, "token audience is not accepted"]);
  });

  it("refuses a wrong issuer (another tenant)", async () => {
    const other = `https://login.microsoftonline.com/${randomUUID()}/v2.0`;
    const err = await rejection(await signJwt(tenantKey, { ...goodClaims(), iss: other }));
    expect([err.statusCode, err.message]).toEqual([401, "token issuer is not accepted"]);
  });

  it("refuses a token without exp", async () => {
    const token = await new jose.SignJWT(goodClaims())
      .setProtectedHeader({ alg: "RS256", kid: tenantKey.kid })
      .sign(tenantKey.pair.privateKey);
    const err = await rejection(token);
    expect([err.statusCode, err.message]).toEqual([401, "token has no 'exp' claim"]);
  });

  it("answers 403 for a valid token without any configured role, naming no configured role", async () => {
    for (const roles of [undefined, [], ["Unrelated.Role"], "Streams.Operator"]) {
      const err = await rejection(await signJwt(tenantKey, { ...goodClaims(), roles }));
      expect(err.statusCode).toBe(403);
      expect(err.message).toBe("The token carries none of the app roles this service grants.");
      // The body a caller sees: no configured role name in it, whatever the chain has.
      const body = JSON.stringify(errorResponse(err).jsonBody);
      expect(body).not.toMatch(/Streams\.(Operator|Reader)/);
    }
  });

  it("refuses a token that names no caller", async () => {
    const { oid: _oid, azp: _azp, ...claims } = goodClaims();
    const err = await rejection(await signJwt(tenantKey, claims));
    expect([err.statusCode, err.message]).toEqual([
      401,
      "token names no caller (no oid, azp or appid claim)",
    ]);
  });

  it("refuses alg none", async () => {
    const payload = { ...goodClaims(), exp: Math.floor(Date.now() / 1000) + 600 };
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(payload)}.`;
    const err = await rejection(token);
    expect([err.statusCode, err.message]).toEqual([401, "token algorithm is not accepted (only RS256)"]);
  });

  it("refuses HS256 signed with the tenant's public key (algorithm confusion)", async () => {
    const jwk = await jose.exportJWK(tenantKey.pair.publicKey);
    const publicPem = await jose.exportSPKI(tenantKey.pair.publicKey);
    for (const secret of [publicPem, JSON.stringify(jwk), jwk.n!]) {
      const header = b64url({ alg: "HS256", typ: "JWT", kid: tenantKey.kid });
      const body = b64url({ ...goodClaims(), exp: Math.floor(Date.now() / 1000) + 600 });
      const sig = createHmac("sha256", secret).update(`${header}.${body}`).digest("base64url");
      const err = await rejection(`${header}.${body}.${sig}`);
      expect([err.statusCode, err.message]).toEqual([401, "token algorithm is not accepted (only RS256)"]);
    }
  });

  it.each([
    ["not a jwt", "garbage"],
    ["two parts", "a.b"],
    ["bad json", `${b64url({ alg: "RS256" })}.bm90anNvbg.c2ln`],
    ["header not json", "aGVsbG8.aGVsbG8.aGVsbG8"],
  ])("refuses a malformed token (%s) with 401", async (_label, token) => {
    const err = await rejection(token);
    expect(err.statusCode).toBe(401);
  });

  it("fuzz: hundreds of mutated tokens give 401 (never 503, never a throw of anything else)", async () => {
    const valid = await signJwt(tenantKey, goodClaims());
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let seed = 7;
    const random = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const dots = [valid.indexOf("."), valid.lastIndexOf(".")];
    const cases: string[] = [];
    for (let i = 0; i < 200; i++) {
      // Mostly in the header and payload, where parsing happens; some in the signature.
      const at = i % 4 === 3 ? dots[1]! + 1 + random(valid.length - dots[1]! - 1) : random(dots[1]!);
      const replacement = alphabet[random(alphabet.length)]!;
      if (replacement === valid[at]) continue;
      cases.push(valid.slice(0, at) + replacement + valid.slice(at + 1));
    }
    for (let i = 0; i < 50; i++) {
      const cut = random(valid.length);
      cases.push(valid.slice(0, cut) + valid.slice(cut + 1 + random(20)));
    }
    for (const token of cases) {
      const result = await authenticate(token).catch((err: unknown) => err);
      if (!(result instanceof ApiError)) {
        // Base64url's unused trailing bits can leave a mutated segment meaning the same thing.
        expect(result).toMatchObject({ kind: "entra", objectId: CALLER_OID });
        continue;
      }
      expect(result.statusCode).toBe(401);
    }
    expect(cases.length).toBeGreaterThan(200);
  });

  it("gives 503, not 401, when the key set cannot be fetched", async () => {
    const down = new JwksServer([tenantKey]);
    const uri = await down.start();
    down.failing = true;
    const verifier = new JwtVerifier({
      keys: remoteJwks(uri),
      issuers: endpoints.issuers,
      audiences: AUDIENCES,
    });
    try {
      const err: unknown = await verifier
        .verify(await signJwt(tenantKey, goodClaims()))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).statusCode).toBe(503);
    } finally {
      await down.close();
    }
  });

  it("fetches the key set once for many tokens", async () => {
    const counted = new JwksServer([tenantKey]);
    const uri = await counted.start();
    const verifier = new JwtVerifier({
      keys: remoteJwks(uri),
      issuers: endpoints.issuers,
      audiences: AUDIENCES,
    });
    try {
      const token = await signJwt(tenantKey, goodClaims());
      const results = await Promise.all(Array.from({ length: 20 }, () => verifier.verify(token)));
      expect(results.every((r) => r.ok)).toBe(true);
      expect(counted.hits).toBe(1);
    } finally {
      await counted.close();
    }
  });
});

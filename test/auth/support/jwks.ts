import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { jose, type JWTPayload } from "../../../shared/auth/jose";

type KeyPair = Awaited<ReturnType<typeof jose.generateKeyPair>>;

export interface SigningKey {
  kid: string;
  pair: KeyPair;
}

export async function newSigningKey(): Promise<SigningKey> {
  return { kid: randomUUID(), pair: await jose.generateKeyPair("RS256", { extractable: true }) };
}

/** Signs an RS256 JWT; `expiresIn` seconds from now (negative for an expired token). */
export async function signJwt(
  key: SigningKey,
  claims: JWTPayload,
  options: { expiresIn?: number; kid?: string | null } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const kid = options.kid === undefined ? key.kid : options.kid;
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", typ: "JWT", ...(kid === null ? {} : { kid }) })
    .setIssuedAt(now - 60)
    .setNotBefore(now - 60)
    .setExpirationTime(now + (options.expiresIn ?? 3600))
    .sign(key.pair.privateKey);
}

/** A tenant key set served over real HTTP on 127.0.0.1, port 0, as Entra ID serves its JWKS. */
export class JwksServer {
  private server: Server | undefined;
  /** Requests served, to observe caching. */
  hits = 0;
  /** The key-set address, once started. */
  uri = "";
  /** When set, the server answers 500 instead of the key set. */
  failing = false;

  constructor(private readonly keys: readonly SigningKey[]) {}

  async start(): Promise<string> {
    const jwks = {
      keys: await Promise.all(
        this.keys.map(async (k) => ({
          ...(await jose.exportJWK(k.pair.publicKey)),
          kid: k.kid,
          use: "sig",
          alg: "RS256",
        })),
      ),
    };
    const server = createServer((_req, res) => {
      this.hits++;
      if (this.failing) {
        res.writeHead(500).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(jwks));
    });
    this.server = server;
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    this.uri = `http://127.0.0.1:${port}/tenant/discovery/v2.0/keys`;
    return this.uri;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    server.close();
    await once(server, "close");
  }
}

/** base64url of a JSON value, for hand-built (unsigned or mis-signed) tokens. */
export function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

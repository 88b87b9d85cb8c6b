import { SignJWT } from "jose";
import { labelFor } from "../../client/gateway/hostname";
import { LOGIN_PATH, TICKET_TYPE, looksLikeTicket, verifyTicket } from "../../client/gateway/ticket";
// The website's backend gets both from the service SDK.
import { gatewayLoginUrl, gatewaySecretFromText, issueTicket } from "../../client/sdk/service";

const SECRET = new Uint8Array(32).fill(7);
const TARGET = { deviceId: "Demo-Device-01", streamName: "web" };
const decode = (ticket: string) =>
  JSON.parse(Buffer.from(ticket.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;

/** A ticket signed by hand, as another language's JWT library would, to test what verification refuses. */
async function handMade(
  claims: Record<string, unknown>,
  options: { key?: Uint8Array; typ?: string; lifetime?: number; iat?: number } = {},
) {
  const iat = options.iat ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ dev: "Demo-Device-01", str: "web", jti: "0123456789abcdef0123", ...claims })
    .setProtectedHeader({ alg: "HS256", typ: options.typ ?? TICKET_TYPE })
    .setAudience("devicestream-gateway")
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.lifetime ?? 60))
    .sign(options.key ?? SECRET);
}

describe("gateway tickets", () => {
  it("name one target, live 60 s by default and carry a unique id", async () => {
    const ticket = await issueTicket(SECRET, { ...TARGET, moduleId: "mod$1" });
    const check = await verifyTicket(SECRET, ticket);
    expect(check).toMatchObject({ ok: true, target: { ...TARGET, moduleId: "mod$1" } });
    const claims = decode(ticket);
    expect((claims.exp as number) - (claims.iat as number)).toBe(60);
    expect(looksLikeTicket(ticket)).toBe(true);
    const other = await issueTicket(SECRET, TARGET);
    expect(decode(other).jti).not.toBe(claims.jti);
    expect(decode(other)).not.toHaveProperty("mod");
  });

  it("live at most 300 s: a longer ttl is refused when issued and when verified", async () => {
    const ticket = await issueTicket(SECRET, TARGET, { ttlSeconds: 300 });
    expect((await verifyTicket(SECRET, ticket)).ok).toBe(true);
    for (const ttlSeconds of [301, 0, -1, 1.5, Number.NaN]) {
      await expect(issueTicket(SECRET, TARGET, { ttlSeconds })).rejects.toThrow(
        /ttlSeconds must be a whole number from 1 to 300/,
      );
    }
    const longLived = await handMade({}, { lifetime: 3600 });
    expect(await verifyTicket(SECRET, longLived)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/longer than 300/),
    });
  });

  it("expire", async () => {
    const issued = Date.now() - 120_000;
    const ticket = await issueTicket(SECRET, TARGET, { now: () => issued });
    expect(await verifyTicket(SECRET, ticket)).toEqual({
      ok: false,
      expired: true,
      message: "the token has expired",
    });
    expect((await verifyTicket(SECRET, ticket, () => issued + 30_000)).ok).toBe(true);
  });

  it("refuse a forged or altered signature, another type, another algorithm, a missing id or an illegal target", async () => {
    const forged = await issueTicket(new Uint8Array(32).fill(8), TARGET);
    expect(await verifyTicket(SECRET, forged)).toMatchObject({
      ok: false,
      expired: false,
      message: expect.stringMatching(/signature/),
    });
    const good = await issueTicket(SECRET, TARGET);
    const [header, , signature] = good.split(".");
    const otherPayload = Buffer.from(JSON.stringify({ ...decode(good), dev: "Other-Device" })).toString(
      "base64url",
    );
    expect((await verifyTicket(SECRET, `${header}.${otherPayload}.${signature}`)).ok).toBe(false);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: "none", typ: TICKET_TYPE })).toString("base64url")}.${otherPayload}.`;
    expect((await verifyTicket(SECRET, unsigned)).ok).toBe(false);
    expect((await verifyTicket(SECRET, await handMade({}, { typ: "JWT" }))).ok).toBe(false);
    expect((await verifyTicket(SECRET, await handMade({ jti: undefined }))).ok).toBe(false);
    expect((await verifyTicket(SECRET, await handMade({ dev: "bad/id" }))).ok).toBe(false);
    expect((await verifyTicket(SECRET, await handMade({ str: "-web" }))).ok).toBe(false);
    expect((await verifyTicket(SECRET, await handMade({ mod: 42 }))).ok).toBe(false);
    expect(await verifyTicket(SECRET, await handMade({}))).toMatchObject({ ok: true });
  });

  it("fuzz: garbage never throws and never passes", async () => {
    const good = await issueTicket(SECRET, TARGET);
    const cases: unknown[] = [
      undefined,
      null,
      42,
      {},
      "",
      ".",
      "..",
      "a.b.c",
      good + "x",
      "x".repeat(100_000),
    ];
    for (let i = 0; i < 300; i++) {
      const at = i % good.length;
      cases.push(
        good.slice(0, at) + String.fromCharCode(33 + ((good.charCodeAt(at) + i) % 90)) + good.slice(at + 1),
      );
    }
    for (const ticket of cases) {
      if (ticket === good) continue;
      const check = await verifyTicket(SECRET, ticket);
      // A mutation of the last character may keep the signature's bits (base64url padding bits).
      if (check.ok)
        expect(typeof ticket === "string" && ticket.slice(0, -1) === good.slice(0, -1)).toBe(true);
    }
  });

  it("are only issued with a secret of 32 bytes or more, for a legal target", async () => {
    await expect(issueTicket(new Uint8Array(31), TARGET)).rejects.toThrow(/at least 32 bytes/);
    await expect(issueTicket(SECRET, { deviceId: "a/b", streamName: "web" })).rejects.toThrow(
      /deviceId must be/,
    );
    await expect(issueTicket(SECRET, { deviceId: "a", moduleId: "", streamName: "web" })).rejects.toThrow(
      /moduleId must be/,
    );
    await expect(issueTicket(SECRET, { deviceId: "a", streamName: "we b" })).rejects.toThrow(
      /streamName must be/,
    );
  });
});

describe("gatewaySecretFromText", () => {
  it("takes the text's UTF-8 bytes as the key, as other languages' JWT libraries do with a string", async () => {
    const text = "x".repeat(31) + "é"; // 33 bytes
    const ticket = await issueTicket(gatewaySecretFromText(text), TARGET);
    expect((await verifyTicket(new TextEncoder().encode(text), ticket)).ok).toBe(true);
    expect(() => gatewaySecretFromText("x".repeat(31))).toThrow(/at least 32 bytes/);
  });
});

describe("gatewayLoginUrl", () => {
  it("is the login path on the target's own host, with the ticket in the query", () => {
    const url = new URL(
      gatewayLoginUrl({ baseDomain: "localhost", scheme: "http", port: 8090 }, TARGET, "a.b+c"),
    );
    expect(url.protocol).toBe("http:");
    expect(url.host).toBe(`${labelFor(TARGET)}.localhost:8090`);
    expect(url.pathname).toBe(LOGIN_PATH);
    expect(url.searchParams.get("ticket")).toBe("a.b+c");
    const secure = gatewayLoginUrl({ baseDomain: "Devices.Example.com." }, TARGET, "t");
    expect(secure).toBe(`https://${labelFor(TARGET)}.devices.example.com/.devicestream/login?ticket=t`);
  });

  it("refuses a base domain that is no DNS name and a bad port", () => {
    for (const baseDomain of ["", "evil.com/x", "a..b", "-a.com", "a.com:80", "a b"]) {
      expect(() => gatewayLoginUrl({ baseDomain }, TARGET, "t")).toThrow(/is not a DNS name/);
    }
    expect(() => gatewayLoginUrl({ baseDomain: "localhost", port: 0 }, TARGET, "t")).toThrow(/port/);
  });
});

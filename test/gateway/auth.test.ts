import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { createGatewayAuth, type AuthResult } from "../../client/gateway/auth";
import { labelFor } from "../../client/gateway/hostname";
import { issueTicket } from "../../client/gateway/ticket";
import { junkGenerator } from "../helpers/random";

const SECRET = new Uint8Array(32).fill(7);
const A = { deviceId: "Demo-Device-01", streamName: "web" };
const B = { deviceId: "demo-device-01", streamName: "web" };
const LABEL_A = labelFor(A);
const LABEL_B = labelFor(B);
const HOST_A = `${LABEL_A}.localhost:8090`;

/** The parts of a request authenticate reads. */
function request(
  url: string,
  headers: IncomingHttpHeaders = {},
  extra: { method?: string; encrypted?: boolean } = {},
) {
  return {
    url,
    method: extra.method ?? "GET",
    headers: { host: HOST_A, ...headers },
    socket: { encrypted: extra.encrypted },
  } as unknown as IncomingMessage;
}

const loginUrl = (ticket: string) => `/.devicestream/login?ticket=${encodeURIComponent(ticket)}`;

/** The session cookie's `name=value` from a login's Set-Cookie. */
function sessionCookie(result: AuthResult): string {
  if (result.kind !== "login") throw new Error(`expected a login, got ${JSON.stringify(result)}`);
  return String((result.headers["set-cookie"] as string[])[0]).split(";")[0]!;
}

async function logIn(auth = createGatewayAuth({ secret: SECRET }), target = A, label = LABEL_A) {
  return sessionCookie(await auth.authenticate(request(loginUrl(await issueTicket(SECRET, target))), label));
}

const denied = (status: number, code: string) => ({ kind: "deny", status, code });

describe("gateway login with a one-time URL", () => {
  it("sets a host-only, HttpOnly, SameSite=Lax session cookie and redirects to /", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const result = await auth.authenticate(request(loginUrl(await issueTicket(SECRET, A))), LABEL_A);
    expect(result).toMatchObject({
      kind: "login",
      status: 302,
      headers: { location: "/", "cache-control": "no-store" },
    });
    const cookie = String((result as { headers: { "set-cookie": string[] } }).headers["set-cookie"][0]);
    const attributes = cookie
      .split(";")
      .slice(1)
      .map((a) => a.trim());
    expect(cookie.startsWith("devicestream_session=")).toBe(true);
    expect(attributes).toEqual(["Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"]);
    expect(cookie).not.toMatch(/domain/i);
  });

  it("marks the cookie Secure over TLS, or when told (a TLS proxy in front)", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const tls = await auth.authenticate(
      request(loginUrl(await issueTicket(SECRET, A)), {}, { encrypted: true }),
      LABEL_A,
    );
    expect(String((tls as { headers: { "set-cookie": string[] } }).headers["set-cookie"][0])).toMatch(
      /; Secure$/,
    );
    const proxied = createGatewayAuth({
      secret: SECRET,
      secureCookies: true,
      cookieName: "gw",
      sessionTtlSeconds: 600,
    });
    const result = await proxied.authenticate(request(loginUrl(await issueTicket(SECRET, A))), LABEL_A);
    expect(String((result as { headers: { "set-cookie": string[] } }).headers["set-cookie"][0])).toMatch(
      /^gw=[^;]+; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax; Secure$/,
    );
  });

  it("refuses a ticket used a second time, even when both uses race", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const ticket = await issueTicket(SECRET, A);
    const results = await Promise.all(
      [1, 2, 3].map(() => auth.authenticate(request(loginUrl(ticket)), LABEL_A)),
    );
    expect(results.filter((r) => r.kind === "login")).toHaveLength(1);
    expect(results.filter((r) => r.kind === "deny")).toEqual(
      [denied(403, "TicketUsed"), denied(403, "TicketUsed")].map((d) => expect.objectContaining(d)),
    );
    expect(await auth.authenticate(request(loginUrl(ticket)), LABEL_A)).toMatchObject(
      denied(403, "TicketUsed"),
    );
    // Nor can the used ticket still serve as a bearer token.
    expect(
      await auth.authenticate(request("/", { authorization: `Bearer ${ticket}` }), LABEL_A),
    ).toMatchObject(denied(403, "TicketUsed"));
  });

  it("refuses a ticket for another host, an expired, a forged and a missing one with 401/403", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const forB = await issueTicket(SECRET, B);
    expect(await auth.authenticate(request(loginUrl(forB)), LABEL_A)).toMatchObject(
      denied(403, "TicketForAnotherHost"),
    );
    // Presented at the wrong host, it is not spent.
    expect((await auth.authenticate(request(loginUrl(forB)), LABEL_B)).kind).toBe("login");
    const old = await issueTicket(SECRET, A, { now: () => Date.now() - 600_000 });
    expect(await auth.authenticate(request(loginUrl(old)), LABEL_A)).toMatchObject(
      denied(403, "TicketExpired"),
    );
    const forged = await issueTicket(new Uint8Array(32).fill(9), A);
    expect(await auth.authenticate(request(loginUrl(forged)), LABEL_A)).toMatchObject(
      denied(403, "InvalidTicket"),
    );
    expect(await auth.authenticate(request("/.devicestream/login"), LABEL_A)).toMatchObject(
      denied(401, "TicketRequired"),
    );
    expect(await auth.authenticate(request(`http://${HOST_A}${loginUrl(forB)}`), LABEL_A)).toMatchObject(
      denied(403, "TicketForAnotherHost"),
    );
  });
});

describe("gateway sessions", () => {
  it("allow the session's own target on its own host", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const cookie = await logIn(auth);
    expect(await auth.authenticate(request("/app.js", { cookie: `theme=dark; ${cookie}` }), LABEL_A)).toEqual(
      { kind: "allow", target: A },
    );
  });

  it("refuse device A's session cookie on device B's host (403), a forged one (403) and none (401)", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const cookie = await logIn(auth);
    expect(
      await auth.authenticate(request("/", { cookie, host: `${LABEL_B}.localhost` }), LABEL_B),
    ).toMatchObject(denied(403, "SessionForAnotherHost"));
    const [name, value] = cookie.split("=") as [string, string];
    const forged = `${name}=${value.slice(0, -3)}abc`;
    expect(await auth.authenticate(request("/", { cookie: forged }), LABEL_A)).toMatchObject(
      denied(403, "InvalidSession"),
    );
    expect(await auth.authenticate(request("/"), LABEL_A)).toMatchObject(denied(401, "LoginRequired"));
    // A ticket is no session, and a session is no ticket.
    const ticket = await issueTicket(SECRET, A);
    expect(await auth.authenticate(request("/", { cookie: `${name}=${ticket}` }), LABEL_A)).toMatchObject(
      denied(403, "InvalidSession"),
    );
    expect(
      await auth.authenticate(request("/", { authorization: `Bearer ${value}` }), LABEL_A),
    ).toMatchObject(denied(401, "LoginRequired"));
  });

  it("expire after the session lifetime (401: log in again)", async () => {
    let now = Date.now();
    const auth = createGatewayAuth({ secret: SECRET, sessionTtlSeconds: 60, now: () => now });
    const ticket = await issueTicket(SECRET, A, { now: () => now });
    const cookie = sessionCookie(await auth.authenticate(request(loginUrl(ticket)), LABEL_A));
    expect((await auth.authenticate(request("/", { cookie }), LABEL_A)).kind).toBe("allow");
    now += 120_000;
    expect(await auth.authenticate(request("/", { cookie }), LABEL_A)).toMatchObject(
      denied(401, "SessionExpired"),
    );
  });

  it("are found among look-alike cookies a page added with the same name", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const cookie = await logIn(auth);
    const headers = { cookie: `devicestream_session=fake; devicestream_session; ${cookie}` };
    expect((await auth.authenticate(request("/", headers), LABEL_A)).kind).toBe("allow");
  });

  it("refuse requests that another origin's page makes with the user's cookie", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const cookie = await logIn(auth);
    const from = (headers: IncomingHttpHeaders, method = "GET") =>
      auth.authenticate(request("/reboot", { cookie, ...headers }, { method }), LABEL_A);
    const other = `http://${LABEL_B}.localhost:8090`;
    const refused = denied(403, "CrossOriginRequest");
    expect(
      await from({ "sec-fetch-site": "same-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image" }),
    ).toMatchObject(refused);
    expect(
      await from({ "sec-fetch-site": "same-site", "sec-fetch-mode": "cors", origin: other }, "POST"),
    ).toMatchObject(refused);
    expect(
      await from(
        { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" },
        "POST",
      ),
    ).toMatchObject(refused);
    expect(
      await from({ "sec-fetch-site": "same-site", "sec-fetch-mode": "websocket", "sec-fetch-dest": "empty" }),
    ).toMatchObject(refused);
    expect(
      await from({ "sec-fetch-site": "same-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "embed" }),
    ).toMatchObject(refused);
    // Browsers without Fetch Metadata: an unsafe method from another origin.
    expect(await from({ origin: other }, "POST")).toMatchObject(refused);
    // Allowed: the device's own page, the user's own navigation, a link from elsewhere.
    expect((await from({ "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors" }, "POST")).kind).toBe(
      "allow",
    );
    expect((await from({ "sec-fetch-site": "none", "sec-fetch-mode": "navigate" })).kind).toBe("allow");
    expect(
      (
        await from({
          "sec-fetch-site": "cross-site",
          "sec-fetch-mode": "navigate",
          "sec-fetch-dest": "document",
        })
      ).kind,
    ).toBe("allow");
    expect((await from({ origin: `http://${HOST_A}` }, "POST")).kind).toBe("allow");
    expect((await from({ origin: other })).kind).toBe("allow");
  });
});

describe("bearer tickets (non-browser clients)", () => {
  it("allow the ticket's target on its host for the ticket's lifetime, and nothing else", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const ticket = await issueTicket(SECRET, A);
    for (let i = 0; i < 2; i++) {
      expect(await auth.authenticate(request("/", { authorization: `Bearer ${ticket}` }), LABEL_A)).toEqual({
        kind: "allow",
        target: A,
      });
    }
    expect(
      await auth.authenticate(request("/", { authorization: `Bearer ${ticket}` }), LABEL_B),
    ).toMatchObject(denied(403, "TicketForAnotherHost"));
    const old = await issueTicket(SECRET, A, { now: () => Date.now() - 600_000 });
    expect(await auth.authenticate(request("/", { authorization: `bearer ${old}` }), LABEL_A)).toMatchObject(
      denied(403, "TicketExpired"),
    );
  });

  it("leave the device's own Authorization alone: Basic with a session cookie is allowed", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const cookie = await logIn(auth);
    const headers = { cookie, authorization: "Basic dXNlcjpwYXNz" };
    expect((await auth.authenticate(request("/", headers), LABEL_A)).kind).toBe("allow");
    expect(
      await auth.authenticate(request("/", { authorization: "Basic dXNlcjpwYXNz" }), LABEL_A),
    ).toMatchObject(denied(401, "LoginRequired"));
  });
});

describe("createGatewayAuth", () => {
  it("refuses a short secret, a bad cookie name and a session lifetime out of range", () => {
    expect(() => createGatewayAuth({ secret: new Uint8Array(16) })).toThrow(/at least 32 bytes/);
    expect(() => createGatewayAuth({ secret: SECRET, cookieName: "a b" })).toThrow(/cookieName/);
    for (const sessionTtlSeconds of [59, 86401, 1.5]) {
      expect(() => createGatewayAuth({ secret: SECRET, sessionTtlSeconds })).toThrow(/sessionTtlSeconds/);
    }
  });

  it("fuzz: garbage requests never throw; only a valid session on its own host is allowed", async () => {
    const auth = createGatewayAuth({ secret: SECRET });
    const valid = await logIn(auth);
    const junk = junkGenerator(16);
    const wrong: unknown[] = [];
    for (let i = 0; i < 1500; i++) {
      const withSession = junk.random() < 0.25;
      const label = junk.pick([LABEL_A, junk.string()]);
      const junkCookie = junk.pick([junk.string(300), `devicestream_session=${junk.string(500)}`]);
      const headers: Record<string, unknown> = {
        cookie: withSession ? `${junkCookie}; ${valid}` : junk.pick([junkCookie, ["a=b", junk.string()]]),
        authorization: junk.pick([`Bearer ${junk.string(300)}`, junk.string(), undefined]),
      };
      const url = junk.pick([
        `/.devicestream/login?ticket=${junk.string(400)}`,
        `/${junk.string(200)}`,
        junk.string(),
        "x".repeat(20_000),
        undefined,
      ]);
      const req = {
        url,
        method: junk.pick(["GET", "POST", junk.string(), undefined]),
        headers,
        socket: junk.pick([undefined, {}]),
      };
      const result = await auth.authenticate(req as unknown as IncomingMessage, label);
      const isLogin = typeof url === "string" && url.startsWith("/.devicestream/login");
      const expected = withSession && label === LABEL_A && !isLogin ? "allow" : "deny";
      if (result.kind !== expected) wrong.push({ req, label, result });
    }
    expect(wrong).toEqual([]);
  });
});

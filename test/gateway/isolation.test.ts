import { validateHeaderName, validateHeaderValue, type IncomingHttpHeaders } from "node:http";
import { labelFor } from "../../client/gateway/hostname";
import {
  containLocation,
  fromDeviceHeaders,
  originAllowed,
  toDeviceHeaders,
} from "../../client/gateway/isolation";
import { issueTicket } from "../../client/gateway/ticket";
import { junkGenerator } from "../helpers/random";

const HOST = `${labelFor({ deviceId: "Demo-Device-01", streamName: "web" })}.localhost:8090`;
const OTHER = `${labelFor({ deviceId: "demo-device-01", streamName: "web" })}.localhost:8090`;
const TO = {
  host: HOST,
  remoteAddress: "127.0.0.1",
  proto: "http",
  hostHeader: "127.0.0.1:3000",
  cookieName: "devicestream_session",
} as const;
const FROM = { host: HOST, proto: "http", cookieName: "devicestream_session" } as const;

describe("toDeviceHeaders", () => {
  it("keeps the device's cookies and drops the gateway's", () => {
    const out = toDeviceHeaders({ cookie: "a=1; devicestream_session=SECRET; b=2;c" }, TO);
    expect(out.cookie).toBe("a=1; b=2; c");
    expect(
      toDeviceHeaders({ cookie: "devicestream_session=SECRET;  devicestream_session = x" }, TO),
    ).not.toHaveProperty("cookie");
  });

  it("drops an Authorization that carries a gateway ticket, and keeps the device's own", async () => {
    const ticket = await issueTicket(new Uint8Array(32), { deviceId: "Demo-Device-01", streamName: "web" });
    expect(toDeviceHeaders({ authorization: `Bearer ${ticket}` }, TO)).not.toHaveProperty("authorization");
    expect(toDeviceHeaders({ authorization: "Basic dXNlcjpwYXNz" }, TO).authorization).toBe(
      "Basic dXNlcjpwYXNz",
    );
    expect(toDeviceHeaders({ authorization: "Bearer device-own.token" }, TO).authorization).toBe(
      "Bearer device-own.token",
    );
  });

  it("drops hop-by-hop headers and those the Connection header names, sets Host and X-Forwarded-*", () => {
    const out = toDeviceHeaders(
      {
        host: HOST,
        connection: "keep-alive, X-Secret",
        "keep-alive": "timeout=5",
        "x-secret": "1",
        te: "trailers",
        "transfer-encoding": "chunked",
        "proxy-authorization": "Basic x",
        forwarded: "for=1.2.3.4",
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "evil.example",
        accept: "text/html",
        "content-length": "5",
      },
      TO,
    );
    expect(out).toEqual({
      host: "127.0.0.1:3000",
      accept: "text/html",
      "content-length": "5",
      "x-forwarded-for": "203.0.113.9, 127.0.0.1",
      "x-forwarded-proto": "http",
      "x-forwarded-host": HOST,
    });
  });

  it("passes a WebSocket upgrade on", () => {
    const out = toDeviceHeaders(
      { connection: "keep-alive, Upgrade", upgrade: "websocket", "sec-websocket-key": "k" },
      TO,
    );
    expect(out).toMatchObject({ connection: "Upgrade", upgrade: "websocket", "sec-websocket-key": "k" });
  });
});

describe("fromDeviceHeaders", () => {
  it("makes a device's cookies host-only and never lets it set the gateway's cookie", () => {
    const out = fromDeviceHeaders(
      {
        "set-cookie": [
          "a=1; Domain=localhost; Path=/",
          "b=2; path=/x; DOMAIN=.localhost; HttpOnly; domain = other",
          " devicestream_session =forged; Path=/",
          "devicestream_session=forged; Domain=localhost",
          "c=3",
        ],
      },
      FROM,
    );
    expect(out["set-cookie"]).toEqual(["a=1; Path=/", "b=2; path=/x; HttpOnly", "c=3"]);
  });

  it("keeps a redirect to another device's host (or anywhere else) on the device's own host", () => {
    const cases: [string, string | undefined][] = [
      ["/login?next=%2F#top", "/login?next=%2F#top"],
      ["next", "next"],
      [`http://${HOST}/a`, `http://${HOST}/a`],
      [`http://${OTHER}/reboot?now=1`, `http://${HOST}/reboot?now=1`],
      [`//${OTHER}/reboot`, `http://${HOST}/reboot`],
      [`/\\${OTHER}/reboot`, `http://${HOST}/reboot`],
      [`/\t/${OTHER}/x`, `http://${HOST}/x`],
      ["https://192.168.1.1/setup", `http://${HOST}/setup`],
      ["http://localhost:8090//evil.example/", `http://${HOST}//evil.example/`],
      ["javascript:alert(1)", undefined],
      ["data:text/html,<script>", undefined],
      ["http://[bad", undefined],
    ];
    for (const [location, expected] of cases) {
      expect({ location, out: fromDeviceHeaders({ location }, FROM).location }).toEqual({
        location,
        out: expected,
      });
    }
    expect(fromDeviceHeaders({ refresh: `0; url=http://${OTHER}/x` }, FROM).refresh).toBe(
      `0; url=http://${HOST}/x`,
    );
    expect(fromDeviceHeaders({ refresh: "5" }, FROM).refresh).toBe("5");
    expect(fromDeviceHeaders({ refresh: "0; url=javascript:x" }, FROM)).not.toHaveProperty("refresh");
  });

  it("drops Clear-Site-Data (it would clear every device's cookies) and hop-by-hop headers", () => {
    const out = fromDeviceHeaders(
      {
        "clear-site-data": '"cookies"',
        connection: "close",
        "transfer-encoding": "chunked",
        "content-type": "text/html",
      },
      FROM,
    );
    expect(out).toEqual({ "content-type": "text/html" });
  });

  it("leaves the upgrade of a 101 in place", () => {
    expect(
      fromDeviceHeaders({ connection: "Upgrade", upgrade: "websocket", "sec-websocket-accept": "x" }, FROM),
    ).toEqual({
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-accept": "x",
    });
  });
});

describe("originAllowed (WebSocket upgrades)", () => {
  it("allows only the device's own origin, and clients that send none", () => {
    expect(originAllowed(`http://${HOST}`, HOST, "http")).toBe(true);
    expect(originAllowed(`HTTP://${HOST.toUpperCase()}`, HOST, "http")).toBe(true);
    expect(originAllowed(undefined, HOST, "http")).toBe(true);
    expect(originAllowed("https://d.localhost", "d.localhost:443", "https")).toBe(true);
    for (const origin of [
      `http://${OTHER}`,
      `https://${HOST}`,
      `http://${HOST.replace(":8090", ":8091")}`,
      `http://${HOST}/`,
      "null",
      "",
      `http://${HOST}`.padEnd(400, "x"),
    ]) {
      expect({ origin, allowed: originAllowed(origin, HOST, "http") }).toEqual({ origin, allowed: false });
    }
    expect(originAllowed(`http://${HOST}`, "evil/path", "http")).toBe(false);
  });
});

describe("header functions under fuzz", () => {
  const sendable = (headers: Record<string, unknown>) =>
    Object.entries(headers).every(([name, value]) => {
      try {
        validateHeaderName(name);
        for (const v of Array.isArray(value) ? value : [value]) validateHeaderValue(name, v);
        return true;
      } catch {
        return false;
      }
    });

  it("never throw, return only headers Node can send, and never leak the gateway's cookie or a Domain", () => {
    const junk = junkGenerator(7);
    const names = [
      "cookie",
      "set-cookie",
      "location",
      "refresh",
      "connection",
      "upgrade",
      "authorization",
      "x-forwarded-for",
      "host",
      "origin",
    ];
    const bad: unknown[] = [];
    for (let i = 0; i < 2000; i++) {
      const headers: Record<string, unknown> = {};
      for (let n = junk.int(6); n >= 0; n--) {
        const name = junk.pick([...names, junk.string(12)]);
        const value = () =>
          junk.pick([
            junk.string(200),
            `devicestream_session=${junk.string()}`,
            `${junk.string(8)}; Domain=${junk.string(8)}`,
          ]);
        headers[name] = junk.pick([value(), [value(), value()], 42, undefined, null]);
      }
      const host = junk.pick([HOST, junk.string(40)]);
      const proto = junk.pick(["http", "https"] as const);
      const ctx = {
        host,
        proto,
        remoteAddress: junk.string(20),
        hostHeader: junk.string(20),
        cookieName: "devicestream_session",
      };
      const to = toDeviceHeaders(headers as IncomingHttpHeaders, ctx);
      const from = fromDeviceHeaders(headers as IncomingHttpHeaders, ctx);
      originAllowed(junk.string(60), host, proto);
      containLocation(junk.string(100), ctx);
      const leaks =
        /(^|;\s*)devicestream_session=/.test(String(to.cookie ?? "")) ||
        [from["set-cookie"] ?? []]
          .flat()
          .some((c) => /^\s*devicestream_session\s*=|;\s*domain\s*=/i.test(String(c)));
      if (!sendable(to) || !sendable(from) || leaks) bad.push({ headers, host, to, from });
    }
    expect(bad).toEqual([]);
  });
});

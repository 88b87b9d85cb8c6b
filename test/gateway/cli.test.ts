/**
 * `devicestream gateway` and `devicestream gateway ticket` in process against the local stack, with
 * real tickets: a non-browser client (http.request with a pinned lookup: Node does not resolve
 * `*.localhost`) logs in through the one-time URL, then uses the session cookie. Two devices whose
 * IDs differ only in case are two hosts and two pages.
 */
import http from "node:http";
import type { LookupFunction } from "node:net";
import { EXIT } from "../../client/cli/exitCodes";
import { labelFor } from "../../client/gateway/hostname";
import { cliRunner, type Run } from "../helpers/cli";
import { withDeadline } from "../helpers/events";
import { scaled, useTarget } from "../sdk/target";
import { type DeviceWeb, type Reply, deviceWeb, readReply } from "./helpers";

jest.setTimeout(scaled(90_000));
const stack = useTarget();
const SECRET = "a gateway secret of at least 32 bytes, for tests";
const run = cliRunner(() => ({ ...stack().serviceEnv, DEVICESTREAM_GATEWAY_SECRET: SECRET }));

/** Every name resolves to loopback, as a browser resolves `*.localhost`. */
const pinned: LookupFunction = (_host, options, callback) => {
  if (options.all)
    (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [
      { address: "127.0.0.1", family: 4 },
    ]);
  else callback(null, "127.0.0.1", 4);
};

function get(url: string, headers: http.OutgoingHttpHeaders = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { lookup: pinned, headers, agent: false }, (res) => {
      void readReply(res).then(resolve, reject);
    });
    req.on("error", reject);
  });
}

const DEVICES = ["Gw-Cli-Device", "gw-cli-device"];
const cookiesSeen: string[] = [];
const webs: DeviceWeb[] = [];
let gateway: Run;
let port: number;

async function ticketUrl(deviceId: string): Promise<string> {
  const t = run(["gateway", "ticket", deviceId, "web", "--port", String(port)]);
  expect(await t.code).toBe(EXIT.ok);
  return t.stdout().trim();
}

/** Logs in through a one-time URL; the session cookie (name=value). */
async function login(url: string): Promise<string> {
  const r = await get(url);
  expect({ status: r.status, location: r.headers.location }).toEqual({ status: 302, location: "/" });
  const cookie = r.headers["set-cookie"]?.[0] ?? "";
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).not.toMatch(/Domain=/i);
  return cookie.split(";")[0]!;
}

beforeAll(async () => {
  for (const deviceId of DEVICES) {
    const server = http.createServer((req, res) => {
      cookiesSeen.push(String(req.headers.cookie ?? ""));
      res.setHeader("content-type", "text/html");
      res.end(`<h1 id="device">${deviceId}</h1>`);
    });
    webs.push(await deviceWeb(stack(), deviceId, server));
  }
  gateway = run(["gateway", "--base-domain", "localhost", "--listen", "127.0.0.1:0"]);
  port = (await withDeadline(gateway.ready, scaled(30_000), "the gateway to listen")).address!.port;
}, scaled(60_000));

afterAll(async () => {
  gateway?.stop();
  expect(await gateway?.code).toBe(EXIT.ok);
  for (const w of webs) await w.close();
});

describe("devicestream gateway", () => {
  it("logs a client in through the one-time URL; the cookie then reaches that device's page, and each case-different ID is its own device", async () => {
    const pages: string[] = [];
    for (const deviceId of DEVICES) {
      const url = await ticketUrl(deviceId);
      expect(new URL(url).host).toBe(`${labelFor({ deviceId, streamName: "web" })}.localhost:${port}`);
      const cookie = await login(url);
      const page = await get(new URL("/", url).toString(), { cookie: `${cookie}; device-own=kept` });
      expect(page.status).toBe(200);
      pages.push(page.text);
    }
    expect(pages).toEqual(DEVICES.map((d) => `<h1 id="device">${d}</h1>`));
    // The device got its own cookie, never the gateway's session.
    expect(cookiesSeen).toEqual(["device-own=kept", "device-own=kept"]);
  });

  it("a login URL works once; a session for one device is refused on another's host; no ticket is refused", async () => {
    const url = await ticketUrl(DEVICES[0]!);
    const cookie = await login(url);
    const again = await get(url);
    expect({ status: again.status, code: (again.json() as { error: { code: string } }).error.code }).toEqual({
      status: 403,
      code: "TicketUsed",
    });
    const other = `http://${labelFor({ deviceId: DEVICES[1]!, streamName: "web" })}.localhost:${port}/`;
    expect((await get(other, { cookie })).status).toBe(403);
    expect((await get(other)).status).toBe(401);
  });

  it("writes one access line per request on stderr, with no ticket, cookie or query string", async () => {
    const url = await ticketUrl(DEVICES[1]!);
    const cookie = await login(url);
    await get(new URL("/page?private=1", url).toString(), { cookie });
    const lines = await gateway.lines.waitFor(
      (l) => l.some((x) => / GET \/page 200 /.test(x)),
      "the access line of /page",
      scaled(10_000),
    );
    expect(lines.find((x) => / GET \/page 200 /.test(x))).toMatch(
      /^gateway: gw-cli-device web GET \/page 200 in=0 out=\d+ \d+ms$/,
    );
    const all = gateway.stderr();
    expect(all).not.toContain(new URL(url).searchParams.get("ticket")!);
    expect(all).not.toContain(cookie.split("=")[1]!);
    expect(all).not.toContain("private=1");
  });

  it("refuses bad settings with exit 2 and a message: no secret, a short secret, a bad --allow, no --base-domain", async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["gateway", "--base-domain", "localhost"], { DEVICESTREAM_GATEWAY_SECRET: "" }, /no gateway secret/],
      [
        ["gateway", "--base-domain", "localhost"],
        { DEVICESTREAM_GATEWAY_SECRET: "short" },
        /at least 32 bytes/,
      ],
      [["gateway", "--base-domain", "localhost", "--allow", "Dev:web"], {}, /DEVICE\/NAME/],
      [["gateway", "--base-domain", "localhost", "--allow", "Dev/bad name"], {}, /stream name/],
      [["gateway"], {}, /--base-domain/],
      [["gateway", "ticket", "Dev", "web"], { DEVICESTREAM_GATEWAY_SECRET: "" }, /no gateway secret/],
    ];
    for (const [args, env, message] of cases) {
      const r = run(args, env);
      expect({ args, code: await r.code }).toEqual({ args, code: EXIT.usage });
      expect(r.stderr()).toMatch(message);
    }
  });

  it("--allow limits the gateway to the targets it names (403 NotAllowed for others)", async () => {
    const limited = run([
      "gateway",
      "--base-domain",
      "localhost",
      "--listen",
      "127.0.0.1:0",
      "--allow",
      `${DEVICES[0]!}/web`,
    ]);
    const p = (await withDeadline(limited.ready, scaled(30_000), "the limited gateway")).address!.port;
    try {
      for (const [deviceId, status] of [
        [DEVICES[0]!, 200],
        [DEVICES[1]!, 403],
      ] as const) {
        const url = (await ticketUrl(deviceId)).replace(`:${port}/`, `:${p}/`);
        const cookie = await login(url);
        expect((await get(new URL("/", url).toString(), { cookie })).status).toBe(status);
      }
    } finally {
      limited.stop();
      expect(await limited.code).toBe(EXIT.ok);
    }
  });
});

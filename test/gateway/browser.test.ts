/**
 * Headless Chromium through the gateway: two devices' pages at once, each with 26 sub-resources and
 * a WebSocket echo, logged in through their one-time URLs; and device isolation as a browser sees
 * it (a device's base-domain cookie, a redirect to another device's host, the gateway's cookie and
 * ticket kept from devices). Chromium resolves `*.localhost` to loopback by itself.
 */
import http from "node:http";
import { WebSocketServer } from "ws";
import { createGatewayAuth } from "../../client/gateway/auth";
import { labelFor } from "../../client/gateway/hostname";
import { DEFAULT_COOKIE_NAME } from "../../client/gateway/isolation";
import { type Gateway, startGateway } from "../../client/gateway/server";
import { type DeviceTarget, gatewayLoginUrl, issueTicket } from "../../client/sdk/service";
import { type Chromium, launchChromium, watchedPage } from "../helpers/chromium";
import { withDeadline } from "../helpers/events";
import { scaled, useTarget } from "../sdk/target";
import { type DeviceWeb, deviceWeb } from "./helpers";

jest.setTimeout(scaled(120_000));
const stack = useTarget();
const SECRET = Buffer.alloc(32, "browser test secret");
const TILES = 24;
const DEVICES = ["Gw-Browser-01", "gw-browser-01"];
const target = (deviceId: string): DeviceTarget => ({ deviceId, streamName: "web" });

/** Everything a device's web server was sent: its URL and headers. */
const received: { deviceId: string; url: string; headers: http.IncomingHttpHeaders }[] = [];

const PAGE = (deviceId: string) => `<!doctype html>
<html><head><title>device</title><link rel="stylesheet" href="/style.css"></head>
<body><h1 id="device">${deviceId}</h1><div id="tiles">${Array.from(
  { length: TILES },
  (_, i) => `<img src="/tile/${i}.svg" width="16" height="16">`,
).join("")}</div><p id="status">loading</p><script src="/app.js"></script></body></html>`;

/** Waits for every tile and one WebSocket echo, then says so in #status. */
const APP = `
const images = [...document.images];
const loaded = Promise.all(images.map((img) => img.complete && img.naturalWidth > 0
  ? 1 : new Promise((ok, fail) => { img.onload = () => ok(1); img.onerror = () => fail(new Error(img.src)); })));
const echoed = new Promise((ok, fail) => {
  const ws = new WebSocket("ws://" + location.host + "/echo");
  ws.onopen = () => ws.send("ping " + document.getElementById("device").textContent);
  ws.onmessage = (m) => { ok(m.data); ws.close(); };
  ws.onerror = () => fail(new Error("websocket"));
});
Promise.all([loaded, echoed]).then(([tiles, echo]) => {
  const status = document.getElementById("status");
  status.textContent = tiles.length + " tiles; echo: " + echo;
  status.className = "done";
}, (e) => { document.getElementById("status").textContent = "failed: " + e.message; });
`;

function deviceApp(deviceId: string, others: () => string): http.RequestListener {
  return (req, res) => {
    received.push({ deviceId, url: req.url ?? "", headers: req.headers });
    const url = req.url ?? "/";
    if (url === "/") return void res.writeHead(200, { "content-type": "text/html" }).end(PAGE(deviceId));
    if (url === "/style.css")
      return void res.writeHead(200, { "content-type": "text/css" }).end("h1{color:#036}");
    if (url === "/app.js") return void res.writeHead(200, { "content-type": "text/javascript" }).end(APP);
    const tile = /^\/tile\/(\d+)\.svg$/.exec(url);
    if (tile) {
      return void res
        .writeHead(200, { "content-type": "image/svg+xml" })
        .end(
          `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="#${(Number(tile[1]) * 10).toString(16).padStart(3, "0")}"/></svg>`,
        );
    }
    if (url === "/set-cookies") {
      // A hostile device: a cookie for every host of the base domain, and the gateway's own cookie.
      return void res
        .writeHead(200, {
          "content-type": "text/plain",
          "set-cookie": [
            "wide=1; Domain=localhost; Path=/",
            `${DEFAULT_COOKIE_NAME}=forged; Path=/`,
            "own=1; Path=/",
          ],
        })
        .end("cookies set");
    }
    if (url === "/to-other") return void res.writeHead(302, { location: `${others()}landed` }).end();
    if (url === "/landed")
      return void res.writeHead(200, { "content-type": "text/plain" }).end(`landed on ${deviceId}`);
    res.writeHead(404).end();
  };
}

const webs: DeviceWeb[] = [];
let gateway: Gateway;
let browser: Chromium;
const hostOf = (deviceId: string) => `${labelFor(target(deviceId))}.localhost:${gateway.port}`;

async function loginUrl(deviceId: string): Promise<string> {
  const ticket = await issueTicket(SECRET, target(deviceId));
  return gatewayLoginUrl(
    { baseDomain: "localhost", scheme: "http", port: gateway.port },
    target(deviceId),
    ticket,
  );
}

beforeAll(async () => {
  gateway = await startGateway({
    client: stack().client(),
    baseDomain: "localhost",
    listen: { host: "127.0.0.1", port: 0 },
    auth: createGatewayAuth({ secret: SECRET }),
  });
  for (const [i, deviceId] of DEVICES.entries()) {
    const other = DEVICES[1 - i]!;
    const server = http.createServer(deviceApp(deviceId, () => `http://${hostOf(other)}/`));
    new WebSocketServer({ server, path: "/echo" }).on("connection", (ws) =>
      ws.on("message", (m) => ws.send(`echo from ${deviceId}: ${(m as Buffer).toString()}`)),
    );
    webs.push(await deviceWeb(stack(), deviceId, server));
  }
  browser = await launchChromium();
}, scaled(90_000));

afterAll(async () => {
  // Each step bounded and named: a teardown that hangs says where instead of the hook's timeout.
  const step = (p: Promise<void> | undefined, what: string) =>
    withDeadline(p ?? Promise.resolve(), scaled(30_000), what);
  await step(browser?.close(), "the browser to close");
  await step(gateway?.close(), "the gateway to close");
  for (const w of webs) await step(w.close(), `device ${w.deviceId}'s web server to close`);
});

describe("Chromium through the gateway", () => {
  it("loads two devices' pages at once: every sub-resource, its own device ID, a WebSocket echo each", async () => {
    const started = Date.now();
    const results = await Promise.all(
      DEVICES.map(async (deviceId) => {
        const { page, failed, finished } = await watchedPage(browser.context);
        const response = await page.goto(await loginUrl(deviceId), {
          waitUntil: "load",
          timeout: scaled(60_000),
        });
        expect(response?.status()).toBe(200);
        expect(new URL(page.url()).host).toBe(hostOf(deviceId));
        await page.waitForSelector("#status.done", { timeout: scaled(30_000) });
        const result = {
          deviceId,
          h1: await page.textContent("#device"),
          status: await page.textContent("#status"),
          failed,
          subResources: finished.filter((u) => new URL(u).pathname !== "/" && !u.includes("/.devicestream/"))
            .length,
        };
        await page.close();
        return result;
      }),
    );
    for (const r of results) {
      expect(r).toEqual({
        deviceId: r.deviceId,
        h1: r.deviceId,
        status: `${TILES} tiles; echo: echo from ${r.deviceId}: ping ${r.deviceId}`,
        failed: [],
        subResources: TILES + 2,
      });
    }
    console.log(
      `gateway e2e: 2 device pages, ${TILES + 2} sub-resources + 1 WebSocket each, in ${Date.now() - started} ms`,
    );
  });

  it("a device's cookies stay on its own host, it cannot replace the gateway's cookie, and its redirect to another device's host lands on its own", async () => {
    const [a, b] = DEVICES as [string, string];
    const { page } = await watchedPage(browser.context);
    await page.goto(await loginUrl(a), { waitUntil: "load" });
    await page.goto(`http://${hostOf(a)}/set-cookies`);
    const cookies = await browser.context.cookies();
    const named = (name: string) => cookies.filter((c) => c.name === name).map((c) => c.domain);
    // Host-only on A's host: no Domain=localhost cookie that B's host would get.
    expect(named("wide")).toEqual([hostOf(a).split(":")[0]]);
    expect(named("own")).toEqual([hostOf(a).split(":")[0]]);
    expect(cookies.find((c) => c.name === DEFAULT_COOKIE_NAME && c.value === "forged")).toBeUndefined();
    // A's session still works after the device tried to overwrite it.
    expect((await page.goto(`http://${hostOf(a)}/landed`))?.status()).toBe(200);

    // A's redirect to B's host is kept on A's host (it would otherwise carry the user into B).
    const response = await page.goto(`http://${hostOf(a)}/to-other`);
    expect(new URL(page.url()).host).toBe(hostOf(a));
    expect(await response?.text()).toBe(`landed on ${a}`);

    // B, logged in separately, never gets A's cookies.
    await page.goto(await loginUrl(b), { waitUntil: "load" });
    const toB = received.filter((r) => r.deviceId === b);
    expect(toB.length).toBeGreaterThan(0);
    expect(toB.map((r) => String(r.headers.cookie ?? "")).filter((c) => /wide|own/.test(c))).toEqual([]);
    await page.close();
  });

  it("no device ever saw the gateway's cookie, a ticket or the login path", () => {
    expect(received.length).toBeGreaterThan(2 * (TILES + 3));
    const leaks = received.filter(
      (r) =>
        String(r.headers.cookie ?? "").includes(DEFAULT_COOKIE_NAME) ||
        r.headers.authorization !== undefined ||
        r.url.includes("ticket") ||
        r.url.startsWith("/.devicestream"),
    );
    expect(leaks).toEqual([]);
  });
});

/**
 * The demo devices of `npm start`: registered devices running the device agent in this process.
 * `Demo-Device-01` serves `echo`, `web` (a small page with 24 tiles, so a browser opens many
 * channels at once, and a WebSocket echo) and `ssh` (127.0.0.1:22 unless told otherwise);
 * `demo-device-01`, the same ID but for case, serves `echo` and `web`, so that routing by the exact,
 * case-sensitive ID is visible (through the gateway, each has its own host name and page).
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { WebSocketServer } from "ws";
import { dirname, join } from "node:path";
import { startAgent, type Target } from "../client/cli/agent";
import { openDeviceClient, type AgentClient } from "../client/cli/deviceClient";
import type { DeviceStreamListener } from "../client/sdk/device";
import type { IotHubEmulator } from "../emulators/iothub";
import { listen } from "./ports";
import { DEV_HUB } from "./settings";

export const DEMO_DEVICE_ID = "Demo-Device-01";
/** The second demo device: `DEMO_DEVICE_ID` in lower case, a different device (IDs are case-sensitive). */
export const SECOND_DEMO_DEVICE_ID = "demo-device-01";
export const DEMO_TILES = 24;
/** The demo page's WebSocket echo. */
export const DEMO_ECHO_PATH = "/echo";
/** A WebSocket message larger than this is not the demo page's; the socket is closed (1009). */
const MAX_ECHO_MESSAGE_BYTES = 64 * 1024;

export interface DemoDeviceOptions {
  iotHub: IotHubEmulator;
  /** The Web PubSub emulator's endpoint (`http://127.0.0.1:8080`): with DEV_HUB, the only relay the demo agent joins. */
  relayEndpoint: string;
  host: string;
  /** Default `DEMO_DEVICE_ID`. */
  deviceId?: string;
  /** What stream `ssh` reaches on this machine; without it the device serves no `ssh`. */
  sshPort?: number;
  log: (line: string) => void;
}

export interface DemoDevice {
  readonly deviceId: string;
  /** The stream names its agent serves. */
  readonly names: readonly string[];
  /** True when the identity was already registered (a restart). */
  readonly reused: boolean;
  /** Where the demo page is served on the device side. */
  readonly webUrl: string;
  close(): Promise<void>;
}

/** `docs/demo/` from the sources (jest) or from `dist/devstack` (npm start). */
function demoAssetsDir(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, "docs", "demo");
    if (existsSync(join(candidate, "index.html"))) return candidate;
    if (dirname(dir) === dir) throw new Error("docs/demo/index.html not found above " + __dirname);
  }
}

function tileSvg(n: number): string {
  const hue = Math.round((n * 360) / DEMO_TILES);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">` +
    `<rect width="64" height="64" rx="8" fill="hsl(${hue} 70% 55%)"/>` +
    `<text x="32" y="40" font-size="22" text-anchor="middle" fill="#fff" font-family="sans-serif">${n}</text>` +
    `</svg>`
  );
}

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);

/**
 * The demo page of `deviceId`: index.html with the device's ID and its tiles, style.css, app.js,
 * 24 generated SVG tiles, and a WebSocket echo at `/echo` (26 sub-resources and one WebSocket).
 */
export async function startDemoWebServer(
  host: string,
  deviceId = DEMO_DEVICE_ID,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const dir = demoAssetsDir();
  const tiles = Array.from(
    { length: DEMO_TILES },
    (_, i) => `<img src="tiles/${i + 1}.svg" alt="tile ${i + 1}" />`,
  ).join("");
  const index = (await readFile(join(dir, "index.html"), "utf8"))
    .replace("<!-- TILES -->", tiles)
    .replaceAll("<!-- DEVICE_ID -->", escapeHtml(deviceId));
  const files: Record<string, [string, string]> = {
    "/": ["text/html; charset=utf-8", index],
    "/index.html": ["text/html; charset=utf-8", index],
    "/style.css": ["text/css", await readFile(join(dir, "style.css"), "utf8")],
    "/app.js": ["text/javascript", await readFile(join(dir, "app.js"), "utf8")],
  };
  for (let n = 1; n <= DEMO_TILES; n++) files[`/tiles/${n}.svg`] = ["image/svg+xml", tileSvg(n)];
  const server = createServer((req, res) => {
    const file = files[new URL(req.url ?? "/", "http://device").pathname];
    if (!file || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, { "content-type": file[0], "cache-control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : file[1]);
  });
  const echo = new WebSocketServer({ noServer: true, maxPayload: MAX_ECHO_MESSAGE_BYTES });
  echo.on("connection", (socket) => {
    socket.on("error", () => socket.terminate());
    socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  server.on("upgrade", (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    if (new URL(req.url ?? "/", "http://device").pathname !== DEMO_ECHO_PATH) {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    echo.handleUpgrade(req, socket, head, (ws) => echo.emit("connection", ws, req));
  });
  const port = await listen(server, 0, host, "demo web page");
  return {
    server,
    port,
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Upgraded sockets are no longer the HTTP server's to close.
      for (const socket of echo.clients) socket.terminate();
      echo.close();
      server.closeAllConnections();
      return closed;
    },
  };
}

/**
 * Registers the demo device unless the emulator's registry (kept in the state directory) already
 * has it, then connects it and serves its streams. Restarts reuse the same identity and key.
 */
export async function startDemoDevice(options: DemoDeviceOptions): Promise<DemoDevice> {
  const { iotHub, host } = options;
  const deviceId = options.deviceId ?? DEMO_DEVICE_ID;
  const existing = iotHub.connectionString(deviceId);
  const connectionString = existing ?? (await iotHub.createDevice(deviceId));
  const web = await startDemoWebServer(host, deviceId);
  const dialHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  const targets = new Map<string, Target>([
    ["echo", "echo"],
    ["web", { host: dialHost, port: web.port }],
  ]);
  if (options.sshPort !== undefined) targets.set("ssh", { host: "127.0.0.1", port: options.sshPort });
  let client: AgentClient | undefined;
  let listener: DeviceStreamListener | undefined;
  try {
    client = await openDeviceClient({
      connectionString,
      transport: "mqtt",
      caFile: iotHub.caPath,
      env: {},
    });
    client.on("error", (e: Error) => options.log(`iot hub: ${e.message}`));
    listener = startAgent(client, {
      targets,
      // The emulator's endpoint (plain http by default, HTTPS with --keyless); its hub is the one
      // the local control plane uses.
      relay: {
        endpoint: options.relayEndpoint,
        hub: DEV_HUB,
        allowInsecure: options.relayEndpoint.startsWith("http:"),
      },
      log: options.log,
    });
  } catch (err) {
    await client?.close().catch(() => undefined);
    await web.close();
    throw err;
  }
  const openClient = client;
  const openListener = listener;
  let closing: Promise<void> | undefined;
  return {
    deviceId,
    names: [...targets.keys()],
    reused: existing !== undefined,
    webUrl: `http://${dialHost}:${web.port}/`,
    close() {
      closing ??= (async () => {
        await openListener.close("GoingAway").catch(() => undefined);
        await openClient.close().catch(() => undefined);
        await web.close();
      })();
      return closing;
    },
  };
}

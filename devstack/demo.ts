/**
 * The demo device of `npm start`: a registered device with a mixed-case ID running the device agent
 * in this process, serving `echo`, `web` (a small page with 24 tiles, so a browser opens many
 * channels at once) and `ssh` (127.0.0.1:22 unless told otherwise).
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { dirname, join } from "node:path";
import { startAgent, type Target } from "../client/cli/agent";
import { openDeviceClient, type AgentClient } from "../client/cli/deviceClient";
import type { DeviceStreamListener } from "../client/sdk/device";
import type { IotHubEmulator } from "../emulators/iothub";
import { listen } from "./ports";
import { DEV_HUB } from "./settings";

export const DEMO_DEVICE_ID = "Demo-Device-01";
export const DEMO_TILES = 24;

export interface DemoDeviceOptions {
  iotHub: IotHubEmulator;
  /** The Web PubSub emulator's endpoint (`http://127.0.0.1:8080`): with DEV_HUB, the only relay the demo agent joins. */
  relayEndpoint: string;
  host: string;
  /** What stream `ssh` reaches on this machine. */
  sshPort: number;
  log: (line: string) => void;
}

export interface DemoDevice {
  readonly deviceId: string;
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

/** The demo page: index.html with its tiles, style.css, app.js and 24 generated SVG tiles. */
export async function startDemoWebServer(host: string): Promise<{ server: Server; port: number }> {
  const dir = demoAssetsDir();
  const tiles = Array.from(
    { length: DEMO_TILES },
    (_, i) => `<img src="tiles/${i + 1}.svg" alt="tile ${i + 1}" />`,
  ).join("");
  const index = (await readFile(join(dir, "index.html"), "utf8")).replace("<!-- TILES -->", tiles);
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
  const port = await listen(server, 0, host, "demo web page");
  return { server, port };
}

/**
 * Registers the demo device unless the emulator's registry (kept in the state directory) already
 * has it, then connects it and serves its streams. Restarts reuse the same identity and key.
 */
export async function startDemoDevice(options: DemoDeviceOptions): Promise<DemoDevice> {
  const { iotHub, host } = options;
  const existing = iotHub.connectionString(DEMO_DEVICE_ID);
  const connectionString = existing ?? (await iotHub.createDevice(DEMO_DEVICE_ID));
  const web = await startDemoWebServer(host);
  const dialHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
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
    const targets = new Map<string, Target>([
      ["echo", "echo"],
      ["web", { host: dialHost, port: web.port }],
      ["ssh", { host: "127.0.0.1", port: options.sshPort }],
    ]);
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
    web.server.close();
    throw err;
  }
  const openClient = client;
  const openListener = listener;
  let closing: Promise<void> | undefined;
  return {
    deviceId: DEMO_DEVICE_ID,
    reused: existing !== undefined,
    webUrl: `http://${dialHost}:${web.port}/`,
    close() {
      closing ??= (async () => {
        await openListener.close("GoingAway").catch(() => undefined);
        await openClient.close().catch(() => undefined);
        const closed = new Promise<void>((resolve) => web.server.close(() => resolve()));
        web.server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

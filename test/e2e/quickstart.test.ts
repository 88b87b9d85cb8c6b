/**
 * The README's quickstart, for real: the local stack as `npm start` runs it (`node
 * dist/devstack/start.js` after the same build), its demo device, and the three commands it prints,
 * run verbatim from a directory laid out like the repository root (its own `.devstack`, a copy of
 * `dist`: the CLI finds the checkout's `.devstack/env` from its own real location, which a
 * symbolic link would put back in the repository; `node_modules` and `docs` linked). The browser command is
 * opened by Debian's headless Chromium through playwright-core.
 */
import { readFileSync } from "node:fs";
import { cp, mkdtemp, readdir, readFile, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext } from "playwright-core";
import { labelFor } from "../../client/gateway/hostname";
import { CHROMIUM, launchChromium, watchedPage } from "../helpers/chromium";
import { withDeadline } from "../helpers/events";
import { EPHEMERAL_STACK_PORTS } from "../helpers/stackArgs";
import {
  REPO,
  type Child,
  type Sshd,
  ensureBuilt,
  freePort,
  groupAlive,
  killAll,
  run,
  start,
  startSshd,
  stop,
} from "./support";

jest.setTimeout(120_000);

let ws: string;
let sshd: Sshd;
let stack: Child;
let forwardPort: number;
let gatewayPort: number;
let commands: string[];
let browser: BrowserContext | undefined;

function startStack(): Child {
  return start(
    process.execPath,
    [
      "dist/devstack/start.js",
      ...EPHEMERAL_STACK_PORTS,
      ...["--demo-ssh-port", String(sshd.port)],
      ...["--demo-forward-port", String(forwardPort)],
      ...["--demo-gateway-port", String(gatewayPort)],
    ],
    { cwd: ws, env: { ...process.env, DEVICESTREAM_CONNECTION_STRING: "" } },
  );
}

/** Every file under `dir` with its mode, and every directory (`/` at the end). */
async function modes(dir: string, base = dir): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const mode = ((await stat(path)).mode & 0o777).toString(8);
    if (entry.isDirectory())
      Object.assign(out, { [`${path.slice(base.length)}/`]: mode }, await modes(path, base));
    else out[path.slice(base.length)] = mode;
  }
  return out;
}

/** `.devstack/` is the user's alone: directories 0700, files 0600 (docs/decisions.md §1 rule 7). */
async function expectPrivate(): Promise<void> {
  const found = await modes(join(ws, ".devstack"));
  expect(Object.keys(found)).toEqual(expect.arrayContaining(["/env", "/azurite/", "/iothub/"]));
  const loose = Object.entries(found).filter(([path, mode]) => mode !== (path.endsWith("/") ? "700" : "600"));
  expect(loose).toEqual([]);
  expect(((await stat(join(ws, ".devstack"))).mode & 0o777).toString(8)).toBe("700");
}

/** A printed command, run by the shell from the workspace root exactly as a user pastes it. */
const shell = (command: string) =>
  start("sh", ["-c", command], {
    cwd: ws,
    env: { ...process.env, DEVICESTREAM_CONNECTION_STRING: "", IOTHUB_CONNECTION_STRING: "" },
  });

beforeAll(async () => {
  await ensureBuilt();
  ws = await mkdtemp(join(tmpdir(), "e2e-quickstart-"));
  await cp(join(REPO, "dist"), join(ws, "dist"), { recursive: true });
  // npm start loads the function app as the worker does: from package.json `main`.
  await cp(join(REPO, "package.json"), join(ws, "package.json"));
  for (const dir of ["node_modules", "docs"]) await symlink(join(REPO, dir), join(ws, dir)); // docs/demo: the demo's page
  sshd = await startSshd();
  forwardPort = await freePort();
  gatewayPort = await freePort();
  const started = Date.now();
  stack = startStack();
  await stack.waitFor(/Press Ctrl-C to stop/, "the local stack to be ready", 60_000);
  const seconds = (Date.now() - started) / 1000;
  console.log(`e2e: local stack with demo device ready in ${seconds.toFixed(1)} s`);
  expect(seconds).toBeLessThan(60);
  commands = [...stack.stdout().matchAll(/^ {2}\$ (.+)$/gm)].map((m) => m[1]!);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await killAll();
  await sshd?.close();
  await rm(ws, { recursive: true, force: true });
}, 60_000);

describe("npm start", () => {
  it("prints the demo devices, their commands and the --config flag; .devstack/ is private", async () => {
    expect(stack.stdout()).toMatch(/Demo device\s+Demo-Device-01 \(registered in \.devstack\)/);
    expect(stack.stdout()).toMatch(
      /Second demo device\s+demo-device-01 \(registered in \.devstack\), serving echo, web$/m,
    );
    expect(commands).toEqual([
      "node dist/bin/devicestream.js echo Demo-Device-01 --bytes 16M",
      `node dist/bin/devicestream.js forward Demo-Device-01 web --listen ${forwardPort}`,
      expect.stringMatching(
        /^ssh -o ProxyCommand='node dist\/bin\/devicestream\.js connect %n ssh' \S+@Demo-Device-01$/,
      ),
      // The gateway's CLI syntax (issue 16); each device opens on its own host name.
      `node dist/bin/devicestream.js gateway --base-domain localhost --listen 127.0.0.1:${gatewayPort}`,
      `node dist/bin/devicestream.js gateway ticket Demo-Device-01 web --base-domain localhost --port ${gatewayPort}`,
      `node dist/bin/devicestream.js gateway ticket demo-device-01 web --base-domain localhost --port ${gatewayPort}`,
    ]);
    for (const deviceId of ["Demo-Device-01", "demo-device-01"]) {
      const host = `${labelFor({ deviceId, streamName: "web" })}.localhost:${gatewayPort}`;
      expect(stack.stdout()).toContain(`${deviceId.padEnd(16)} then lives at http://${host}/`);
    }
    expect(await readFile(join(ws, ".devstack", "env"), "utf8")).toMatch(
      /^DEVICESTREAM_GATEWAY_SECRET=[A-Za-z0-9_-]{43}$/m,
    );
    expect((await stat(join(ws, ".devstack", "env"))).mode & 0o777).toBe(0o600);
    const file = join(ws, ".devstack", "env");
    expect(stack.stdout()).toContain(`--config ${file}  or  export DEVICESTREAM_CONFIG=${file}`);
    // Service-side settings only: the agent's identity and trust never come from this file.
    const env = await readFile(file, "utf8");
    expect(env).toMatch(/^DEVICESTREAM_CONNECTION_STRING=Endpoint=http:\/\/localhost:\d+;/m);
    expect(env).not.toMatch(/RELAY|ALLOW_INSECURE|IOTHUB_DEVICE/);
    await expectPrivate();
  });

  it("1. the echo command works as printed", async () => {
    const echo = shell(commands[0]!);
    expect((await withDeadline(echo.exit, 60_000, "echo")).code).toBe(0);
    expect(echo.stdout()).toMatch(/^verified: 16777216 bytes echoed/m);
  });

  it("2. the forward command serves the demo page to headless Chromium: 26 parallel sub-resources, none failed", async () => {
    const forward = shell(`exec ${commands[1]!}`); // exec: SIGINT reaches the CLI, not sh
    await forward.waitFor(/forwarding 127\.0\.0\.1:\d+ -> Demo-Device-01\/web/, "forward to listen");
    const url = /then open (http:\S+)/.exec(stack.stdout())![1]!;
    const chromiumVersion = (await run(CHROMIUM, ["--version"])).stdout.trim();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const playwrightVersion = (require("playwright-core/package.json") as { version: string }).version;
    console.log(`e2e: ${chromiumVersion}; playwright-core ${playwrightVersion}`);

    const chromium = await launchChromium();
    browser = chromium.context;
    try {
      const { page, failed, finished } = await watchedPage(browser);
      const started = Date.now();
      const response = await page.goto(url, { waitUntil: "load", timeout: 60_000 });
      expect(response?.status()).toBe(200);
      await page.waitForSelector("#status.done", { timeout: 30_000 });
      const ms = Date.now() - started;
      expect(await page.textContent("#status")).toBe("24 of 24 tiles loaded through the stream");
      expect(await page.textContent("h1")).toBe("Hello from the demo device");
      expect(await page.textContent("#device-id")).toBe("Demo-Device-01");
      // The page's WebSocket echo, through the same forward.
      await page.waitForSelector("#websocket.done", { timeout: 30_000 });
      expect(failed).toEqual([]);
      const subResources = finished.filter((u) => u !== url);
      expect(subResources.length).toBeGreaterThanOrEqual(26);
      const shot = join(tmpdir(), `e2e-demo-page-${process.pid}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      expect((await stat(shot)).size).toBeGreaterThan(1000);
      console.log(`e2e: demo page + ${subResources.length} sub-resources in ${ms} ms; screenshot ${shot}`);
    } finally {
      browser = undefined;
      await chromium.close();
    }
    expect((await stop(forward, "SIGINT")).code).toBe(0);
  });

  it("the second demo device, whose ID differs only by case, serves its own page", async () => {
    const port = await freePort();
    const forward = shell(`exec node dist/bin/devicestream.js forward demo-device-01 web --listen ${port}`);
    await forward.waitFor(/forwarding 127\.0\.0\.1:\d+ -> demo-device-01\/web/, "forward to listen");
    const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
    expect(page).toContain('<code id="device-id">demo-device-01</code>');
    expect((await stop(forward, "SIGINT")).code).toBe(0);
  });

  it("3. the ssh command works as printed (with the test's key and host-key options added)", async () => {
    const [ssh, ...rest] = commands[2]!.split(" ");
    const options = sshd.clientOptions.map((o) => `'${o}'`).join(" ");
    const session = shell(`${ssh} ${options} ${rest.join(" ")} 'echo through-the-demo-$((40+2))'`);
    expect((await withDeadline(session.exit, 60_000, "ssh")).code).toBe(0);
    expect(session.stdout().trim()).toBe("through-the-demo-42");
  });

  it("devicestream dev add-device registers another device, writes its agent file, and the printed agent command works", async () => {
    const add = shell("node dist/bin/devicestream.js dev add-device Second-Device");
    expect({ code: (await add.exit).code, stderr: add.stderr() }).toEqual({
      code: 0,
      stderr: expect.anything(),
    });
    expect(add.stdout().trim()).toMatch(
      /^HostName=[^;]+;DeviceId=Second-Device;SharedAccessKey=[A-Za-z0-9+/=]+;GatewayHostName=127\.0\.0\.1:\d+$/,
    );
    const [, agentCommand] = /^ {2}(node dist\/bin\/devicestream\.js device .+)$/m.exec(add.stderr())!;
    expect(agentCommand).toBe(
      "node dist/bin/devicestream.js device --config .devstack/agent-Second-Device.env --echo",
    );
    const file = join(ws, ".devstack", "agent-Second-Device.env");
    expect(((await stat(file)).mode & 0o777).toString(8)).toBe("600");
    expect(await readFile(file, "utf8")).toMatch(
      new RegExp(
        [
          "^IOTHUB_DEVICE_CONNECTION_STRING=HostName=[^;]+;DeviceId=Second-Device;",
          `^IOTHUB_DEVICE_CA_FILE=${join(ws, ".devstack", "iothub", "ca.crt")}$`,
          "^DEVICESTREAM_RELAY_ENDPOINT=http://127\\.0\\.0\\.1:\\d+$",
          "^DEVICESTREAM_RELAY_HUB=streams$",
          "^DEVICESTREAM_ALLOW_INSECURE_RELAY=1$",
        ].join("[\\s\\S]*"),
        "m",
      ),
    );
    const agent = shell(`exec ${agentCommand!}`);
    await agent.waitFor(
      /serving echo; relay http:\/\/127\.0\.0\.1:\d+ hub streams/,
      "the second device's agent",
    );
    const echo = shell("node dist/bin/devicestream.js echo Second-Device --bytes 64k");
    expect({ code: (await echo.exit).code, stderr: echo.stderr() }).toEqual({ code: 0, stderr: "" });
    expect((await stop(agent, "SIGINT")).code).toBe(0);

    // From another directory the printed command names both files by absolute path, and works there.
    const elsewhere = shell(
      "mkdir -p elsewhere && cd elsewhere && node ../dist/bin/devicestream.js dev add-device Second-Device",
    );
    expect((await elsewhere.exit).code).toBe(0);
    const [, fromElsewhere] = /^ {2}(node .+)$/m.exec(elsewhere.stderr())!;
    expect(fromElsewhere).toBe(
      `node ${join(ws, "dist", "bin", "devicestream.js")} device --config ${file} --echo`,
    );
    const agentElsewhere = shell(`cd elsewhere && exec ${fromElsewhere!}`);
    await agentElsewhere.waitFor(/serving echo;/, "the agent started from another directory");
    expect((await stop(agentElsewhere, "SIGINT")).code).toBe(0);
    await expectPrivate();
  });

  it("the agent runs exactly as docs/cli.md shows after npm start, and passes an echo", async () => {
    const doc = readFileSync(join(REPO, "docs", "cli.md"), "utf8");
    const block = /<!-- after npm start -->\s*```sh\n([\s\S]*?)\n```/.exec(doc)![1]!.split("\n");
    expect(block).toEqual([
      "node dist/bin/devicestream.js dev add-device My-Device",
      "node dist/bin/devicestream.js device --config .devstack/agent-My-Device.env --echo",
    ]);
    const add = shell(block[0]!);
    expect((await add.exit).code).toBe(0);
    const agent = shell(`exec ${block[1]!}`);
    await agent.waitFor(/serving echo/, "My-Device's agent");
    const echo = shell("node dist/bin/devicestream.js echo My-Device --bytes 1M");
    expect({ code: (await echo.exit).code, stderr: echo.stderr() }).toEqual({ code: 0, stderr: "" });
    expect(echo.stdout()).toMatch(/^verified: 1048576 bytes echoed/m);
    expect((await stop(agent, "SIGINT")).code).toBe(0);
  });

  it("Ctrl-C stops everything with no orphans; a restart reuses the demo device", async () => {
    const pid = stack.proc.pid!;
    expect((await stop(stack, "SIGINT", 30_000)).code).toBe(0);
    expect(stack.stdout()).toContain("stopped.");
    expect(groupAlive(pid)).toBe(false);
    // Azurite has written its database by now: it is 0600 too (the umask npm start sets).
    expect(Object.keys(await modes(join(ws, ".devstack")))).toContain("/azurite/__azurite_db_table__.json");
    await expectPrivate();

    stack = startStack();
    await stack.waitFor(/Press Ctrl-C to stop/, "the restarted stack", 60_000);
    expect(stack.stdout()).toMatch(/Demo-Device-01 \(reused from \.devstack\)/);
    const echo = shell("node dist/bin/devicestream.js echo Demo-Device-01 --bytes 64k");
    expect((await echo.exit).code).toBe(0);
    expect((await stop(stack, "SIGTERM", 30_000)).code).toBe(0);
  });
});

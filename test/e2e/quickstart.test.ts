/**
 * The README's quickstart, for real: the local stack as `npm start` runs it (`node
 * dist/devstack/start.js` after the same build), its demo device, and the three commands it prints,
 * run verbatim from a directory laid out like the repository root (its own `.devstack`, `dist`
 * linked). The browser command is opened by Debian's headless Chromium through playwright-core.
 */
import { mkdtemp, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { withDeadline } from "../helpers/events";
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

const CHROMIUM = "/usr/bin/chromium";
let ws: string;
let sshd: Sshd;
let stack: Child;
let forwardPort: number;
let commands: string[];
let browser: BrowserContext | undefined;

function startStack(): Child {
  return start(
    process.execPath,
    [
      "dist/devstack/start.js",
      ...["--port", "0", "--table-port", "0", "--webpubsub-port", "0", "--mqtt-port", "0"],
      ...["--iothub-port", "0", "--demo-ssh-port", String(sshd.port)],
      ...["--demo-forward-port", String(forwardPort)],
    ],
    { cwd: ws, env: { ...process.env, DEVICESTREAM_CONNECTION_STRING: "" } },
  );
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
  await symlink(join(REPO, "dist"), join(ws, "dist"));
  sshd = await startSshd();
  forwardPort = await freePort();
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
  it("prints the demo device and three commands, and writes .devstack/env", async () => {
    expect(stack.stdout()).toMatch(/Demo device\s+Demo-Device-01 \(registered in \.devstack\)/);
    expect(commands).toEqual([
      "node dist/bin/devicestream.js echo Demo-Device-01 --bytes 16M",
      `node dist/bin/devicestream.js forward Demo-Device-01 web --listen ${forwardPort}`,
      expect.stringMatching(
        /^ssh -o ProxyCommand='node dist\/bin\/devicestream\.js connect %n ssh' \S+@Demo-Device-01$/,
      ),
    ]);
    expect((await stat(join(ws, ".devstack", "env"))).mode & 0o777).toBe(0o600);
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

    const profile = await mkdtemp(join(tmpdir(), "e2e-chromium-"));
    // A fresh user-data-dir: playwright takes it as launchPersistentContext's first argument.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await browser.newPage();
      const failed: string[] = [];
      const finished: string[] = [];
      page.on("requestfailed", (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`));
      page.on("response", (r) => {
        if (r.status() >= 400) failed.push(`${r.url()}: HTTP ${r.status()}`);
      });
      page.on("requestfinished", (r) => finished.push(r.url()));
      const started = Date.now();
      const response = await page.goto(url, { waitUntil: "load", timeout: 60_000 });
      expect(response?.status()).toBe(200);
      await page.waitForSelector("#status.done", { timeout: 30_000 });
      const ms = Date.now() - started;
      expect(await page.textContent("#status")).toBe("24 of 24 tiles loaded through the stream");
      expect(await page.textContent("h1")).toBe("Hello from the demo device");
      expect(failed).toEqual([]);
      const subResources = finished.filter((u) => u !== url);
      expect(subResources.length).toBeGreaterThanOrEqual(20);
      const shot = join(tmpdir(), `e2e-demo-page-${process.pid}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      expect((await stat(shot)).size).toBeGreaterThan(1000);
      console.log(`e2e: demo page + ${subResources.length} sub-resources in ${ms} ms; screenshot ${shot}`);
    } finally {
      await browser.close();
      browser = undefined;
      await rm(profile, { recursive: true, force: true });
    }
    expect((await stop(forward, "SIGINT")).code).toBe(0);
  });

  it("3. the ssh command works as printed (with the test's key and host-key options added)", async () => {
    const [ssh, ...rest] = commands[2]!.split(" ");
    const options = sshd.clientOptions.map((o) => `'${o}'`).join(" ");
    const session = shell(`${ssh} ${options} ${rest.join(" ")} 'echo through-the-demo-$((40+2))'`);
    expect((await withDeadline(session.exit, 60_000, "ssh")).code).toBe(0);
    expect(session.stdout().trim()).toBe("through-the-demo-42");
  });

  it("devicestream dev add-device registers another device and prints its connection string", async () => {
    const add = shell("node dist/bin/devicestream.js dev add-device Second-Device");
    expect((await add.exit).code).toBe(0);
    expect(add.stdout().trim()).toMatch(
      /^HostName=[^;]+;DeviceId=Second-Device;SharedAccessKey=[A-Za-z0-9+/=]+;GatewayHostName=127\.0\.0\.1:\d+$/,
    );
    // The agent command it suggests connects with that identity.
    const [, agentCommand] = /^ {2}(node dist\/bin\/devicestream\.js device .+)$/m.exec(add.stderr())!;
    const agent = shell(`exec ${agentCommand!}`);
    await agent.waitFor(/serving echo/, "the second device's agent");
    const echo = shell("node dist/bin/devicestream.js echo Second-Device --bytes 64k");
    expect((await echo.exit).code).toBe(0);
    expect((await stop(agent, "SIGINT")).code).toBe(0);
  });

  it("Ctrl-C stops everything with no orphans; a restart reuses the demo device", async () => {
    const pid = stack.proc.pid!;
    expect((await stop(stack, "SIGINT", 30_000)).code).toBe(0);
    expect(stack.stdout()).toContain("stopped.");
    expect(groupAlive(pid)).toBe(false);

    stack = startStack();
    await stack.waitFor(/Press Ctrl-C to stop/, "the restarted stack", 60_000);
    expect(stack.stdout()).toMatch(/Demo-Device-01 \(reused from \.devstack\)/);
    const echo = shell("node dist/bin/devicestream.js echo Demo-Device-01 --bytes 64k");
    expect((await echo.exit).code).toBe(0);
    expect((await stop(stack, "SIGTERM", 30_000)).code).toBe(0);
  });
});

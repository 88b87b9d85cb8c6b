/**
 * `npm start -- --keyless` end to end: the control plane in Azure mode against the local services,
 * with no key in its settings, the CLI signed in through the local Entra ID, and the printed
 * commands run as a user runs them. Each service counts bearer and key-signed requests; the stack
 * prints the counts when it stops, and they prove every Azure SDK call went through a credential.
 */
import { cp, mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { withDeadline } from "../helpers/events";
import { EPHEMERAL_STACK_PORTS } from "../helpers/stackArgs";
import { EXIT } from "../../client/cli/exitCodes";
import { REPO, type Child, type Sshd, ensureBuilt, killAll, start, startSshd, stop } from "./support";

jest.setTimeout(120_000);

const DEVICE = "Demo-Device-01";
let ws: string;
let sshd: Sshd;
let stack: Child;

/** A command as the user runs it from the workspace root: settings only from .devstack/env. */
const shell = (command: string) =>
  start("sh", ["-c", command], {
    cwd: ws,
    env: {
      ...process.env,
      DEVICESTREAM_CONNECTION_STRING: "",
      AZURE_CLIENT_ID: "",
      AZURE_CLIENT_SECRET: "",
      AZURE_TENANT_ID: "",
    },
  });
const CLI = "node dist/bin/devicestream.js";

beforeAll(async () => {
  await ensureBuilt();
  ws = await mkdtemp(join(tmpdir(), "e2e-keyless-"));
  await cp(join(REPO, "dist"), join(ws, "dist"), { recursive: true });
  await cp(join(REPO, "package.json"), join(ws, "package.json"));
  // infra/: the role assignments the local services enforce are the ones the Bicep declares.
  for (const dir of ["node_modules", "docs", "infra"]) await symlink(join(REPO, dir), join(ws, dir));
  sshd = await startSshd();
  stack = start(
    process.execPath,
    [
      "dist/devstack/start.js",
      "--keyless",
      ...EPHEMERAL_STACK_PORTS,
      ...["--demo-ssh-port", String(sshd.port)],
    ],
    // A secret in the shell must not reach the control plane (EnvironmentCredential would win).
    { cwd: ws, env: { ...process.env, AZURE_CLIENT_SECRET: "from-the-shell", AZURE_TENANT_ID: "x" } },
  );
  await stack.waitFor(/Press Ctrl-C to stop/, "the keyless stack to be ready", 90_000);
}, 180_000);

afterAll(async () => {
  await killAll();
  await sshd?.close();
  await rm(ws, { recursive: true, force: true });
}, 60_000);

describe("npm start -- --keyless", () => {
  it("writes the CLI's Entra ID settings and no key to .devstack/env", async () => {
    const env = await readFile(join(ws, ".devstack", "env"), "utf8");
    const names = [...env.matchAll(/^([A-Z_]+)=/gm)].map((m) => m[1]);
    expect(names).toEqual([
      "DEVICESTREAM_ENDPOINT",
      "DEVICESTREAM_SCOPE",
      "AZURE_AUTHORITY_HOST",
      "AZURE_TENANT_ID",
      "AZURE_CLIENT_ID",
      "AZURE_CLIENT_SECRET",
      "DEVICESTREAM_ENTRA_CA_FILE",
      "DEMO_DEVICE_ID",
      "DEVICESTREAM_GATEWAY_SECRET",
    ]);
    expect(env).not.toMatch(/SharedAccessKey|AccountKey|AccessKey=|CONNECTION_STRING/);
    expect(stack.stdout()).toContain("Keyless (Azure mode)");
  });

  it("echo of 16 MB as printed", async () => {
    const echo = shell(`${CLI} echo ${DEVICE} --bytes 16M`);
    expect((await withDeadline(echo.exit, 90_000, "echo")).code).toBe(0);
    expect(echo.stdout()).toMatch(/verified: 16777216 bytes echoed/);
  });

  it("one SSH session through connect %n", async () => {
    const options = sshd.clientOptions.map((o) => `'${o}'`).join(" ");
    const session = shell(
      `ssh -o ProxyCommand='${CLI} connect %n ssh' ${options} ${userInfo().username}@${DEVICE} 'echo keyless-$((40+2))'`,
    );
    expect((await withDeadline(session.exit, 60_000, "ssh")).code).toBe(0);
    expect(session.stdout()).toContain("keyless-42");
  });

  it("forward serves the demo's web page", async () => {
    // exec: the signal below reaches forward itself, not the shell that started it.
    const fwd = shell(`exec ${CLI} forward ${DEVICE} web --listen 0`);
    const [, port] = await fwd.waitFor(/forwarding 127\.0\.0\.1:(\d+) ->/, "forward to listen");
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Hello from the demo device");
    expect((await stop(fwd, "SIGINT")).code).toBe(EXIT.ok);
  });

  it("a stream the device rejects", async () => {
    const refused = shell(`${CLI} connect ${DEVICE} no-such-target`);
    const exit = await withDeadline(refused.exit, 60_000, "the refused connect");
    expect(exit.code).not.toBe(0);
    expect(refused.stderr()).toMatch(/reject|refus/i);
  });

  it("a stream closed by DELETE (streams close)", async () => {
    const held = shell(`${CLI} connect ${DEVICE} echo`);
    held.proc.stdin!.write("held-open\n");
    await held.waitFor(/held-open/, "the echo stream");
    const list = shell(`${CLI} streams list ${DEVICE} --state Established --json`);
    expect((await list.exit).code).toBe(EXIT.ok);
    const live = (JSON.parse(list.stdout()) as { streamId: string; name: string }[]).filter(
      (s) => s.name === "echo",
    );
    expect(live).toHaveLength(1);
    const close = shell(`${CLI} streams close ${DEVICE} ${live[0]!.streamId}`);
    expect((await close.exit).code).toBe(EXIT.ok);
    // stdin stays open: only the close ends the stream.
    await withDeadline(held.exit, 30_000, "connect to end after streams close");
    const show = shell(`${CLI} streams show ${DEVICE} ${live[0]!.streamId} --json`);
    expect((await show.exit).code).toBe(EXIT.ok);
    expect(JSON.parse(show.stdout())).toMatchObject({ state: "Closed", closeCode: "ClosedByApi" });
  });

  it("every service saw bearer tokens only, and the managed identity was used", async () => {
    await stop(stack, "SIGTERM", 30_000);
    const line =
      /keyless requests: Web PubSub REST (\d+) bearer, (\d+) key-signed; IoT Hub REST (\d+) bearer, (\d+) key-signed; Tables (\d+) bearer, (\d+) key-signed; managed-identity tokens (\d+)/.exec(
        stack.stdout(),
      );
    expect(line).not.toBeNull();
    const [wpsBearer, wpsKey, hubBearer, hubKey, tableBearer, tableKey, mi] = line!.slice(1).map(Number);
    console.log(`e2e keyless: ${line![0]}`);
    expect({ wpsKey, hubKey, tableKey }).toEqual({ wpsKey: 0, hubKey: 0, tableKey: 0 });
    expect(wpsBearer).toBeGreaterThan(0);
    expect(hubBearer).toBeGreaterThan(0);
    expect(tableBearer).toBeGreaterThan(0);
    expect(mi).toBeGreaterThan(0);
    expect(stack.stdout()).toMatch(/stopped\.\n/);
  });
});

/**
 * The packed artifact runs the control plane: unzipped into an empty directory, loaded through the
 * `@azure/functions-core` stand-in by the local stack (`npm start -- --app <dir>`), with the local
 * settings, and an echo passes through it end to end (CLI → control plane → IoT Hub emulator →
 * demo device → Web PubSub emulator, whose events go to the artifact's relay-events function).
 */
import { mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unpackedArtifact, type Unpacked } from "../deploy/artifact";
import { withDeadline } from "../helpers/events";
import { EPHEMERAL_STACK_PORTS } from "../helpers/stackArgs";
import { REPO, type Child, ensureBuilt, freePort, killAll, start, stop } from "./support";

jest.setTimeout(120_000);

let ws: string;
let unpacked: Unpacked;
let stack: Child;

beforeAll(async () => {
  await ensureBuilt();
  unpacked = await unpackedArtifact();
  ws = await mkdtemp(join(tmpdir(), "e2e-artifact-"));
  await symlink(join(REPO, "dist"), join(ws, "dist"));
  stack = start(
    process.execPath,
    [
      "dist/devstack/start.js",
      ...["--app", unpacked.dir],
      ...EPHEMERAL_STACK_PORTS,
      ...["--demo-forward-port", String(await freePort())],
    ],
    { cwd: ws, env: { ...process.env, DEVICESTREAM_CONNECTION_STRING: "" } },
  );
  await stack.waitFor(/Press Ctrl-C to stop/, "the local stack serving the artifact", 60_000);
}, 180_000);

afterAll(async () => {
  await killAll();
  await rm(ws, { recursive: true, force: true });
  await unpacked?.cleanup();
}, 60_000);

test("the control plane served is the artifact's, and it is healthy", async () => {
  expect(stack.stdout()).toContain(`Function app                    ${unpacked.dir}`);
  const api = /Control plane \(Functions host\)\s+(http\S+)/.exec(stack.stdout())![1]!;
  const health = await fetch(`${api}/health`);
  expect(health.status).toBe(200);
  expect(await health.json()).toMatchObject({ status: "ok" });
});

test("an echo passes through the artifact's control plane", async () => {
  const echo = start(
    process.execPath,
    // dist/ is a link to the repository's build, so the CLI's own checkout is the repository: the
    // stack's configuration, written in this directory, is named as npm start prints it.
    ["dist/bin/devicestream.js", "--config", ".devstack/env", "echo", "Demo-Device-01", "--bytes", "256k"],
    {
      cwd: ws,
      env: { ...process.env, DEVICESTREAM_CONNECTION_STRING: "", IOTHUB_CONNECTION_STRING: "" },
    },
  );
  expect((await withDeadline(echo.exit, 60_000, "echo")).code).toBe(0);
  expect(echo.stdout()).toMatch(/^verified: 262144 bytes echoed/m);
  expect((await stop(stack, "SIGINT", 30_000)).code).toBe(0);
});

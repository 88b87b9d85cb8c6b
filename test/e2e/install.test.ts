/**
 * The client package as its users get it (issue 17): packed once (`npm run pack`'s code), installed
 * from the tarball with docs/device-install.md's own command (its prefix `/opt/devicestream` moved
 * into a temp directory, `--prefer-offline` added), then the installed agent runs as the installed
 * systemd unit's ExecStart= runs it, its credential file written as the page shows, in a 0500
 * directory as LoadCredential= makes it; the installed `devicestream` runs `echo`/`connect` against
 * the local stack, and a small TypeScript program imports the service SDK from the installed
 * package, compiled by tsc (strict) against the installed declarations, and runs.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  realpath,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { installTarballs, installedTree, packClient } from "../../deploy/pack";
import { EXIT } from "../../client/cli/exitCodes";
import {
  DOC_PATH,
  codeBlocks,
  commandsOf,
  devicestreamArgs,
  parseUnit,
  splitWords,
  unitValues,
} from "../helpers/deviceInstall";
import { withDeadline } from "../helpers/events";
import { EPHEMERAL_STACK_PORTS } from "../helpers/stackArgs";
import { REPO, type Child, ensureBuilt, killAll, run, sha256, start, stop } from "./support";

jest.setTimeout(180_000);

const DEVICE = "Installed-Agent-01";
const CLIENT = "@device-streams/client";
let work: string;
/** The install's prefix, the doc's `/opt/devicestream`; `bin/devicestream` is the installed CLI. */
let prefix: string;
/** Where the prefix's packages are (`lib/node_modules`), as npm lays out a --global install. */
let inst: string;
let bin: string;
/** A backend developer's project with the tarball installed as a dependency (`npm install ./…tgz`). */
let backend: string;
let stackDir: string;
let serviceConfig: string;
let agent: Child;

/** No credential or configuration of the surrounding shell leaks into the commands. */
const cleanEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(DEVICESTREAM_|IOTHUB_|AZURE_)/.test(name)) delete env[name];
  }
  return env;
};

/** The installed CLI, executed through its bin link as a shell would (shebang, mode set by npm). */
const installed = (args: string[]) => start(bin, args, { cwd: inst, env: cleanEnv() });

/** The page's install command (the first `npm install --global`), as words, `sudo` dropped. */
function docInstallCommand(): string[] {
  for (const block of codeBlocks(readFileSync(DOC_PATH, "utf8"))) {
    for (const line of block.lines) {
      for (const command of commandsOf(line)) {
        const words = command[0] === "sudo" ? command.slice(1) : command;
        if (words[0] === "npm" && words[1] === "install" && words.includes("--global")) return words;
      }
    }
  }
  throw new Error("docs/device-install.md shows no `npm install --global` command");
}

/** Packs the client and installs the tarball into an empty directory, timing both. */
async function packAndInstall(): Promise<void> {
  let started = Date.now();
  const tarball = await packClient(REPO, join(work, "packs"));
  const packed = Date.now() - started;
  prefix = join(work, "opt-devicestream");
  inst = join(prefix, "lib");
  bin = join(prefix, "bin", "devicestream");
  const words = docInstallCommand().map((w) =>
    w.replaceAll("/opt/devicestream", prefix).replace(/^\.\/device-streams-client-<version>\.tgz$/, tarball),
  );
  // The page's tarball name is the one npm pack writes.
  expect(words).toContain(tarball);
  expect(basename(tarball)).toMatch(/^device-streams-client-\d+\.\d+\.\d+\.tgz$/);
  started = Date.now();
  backend = join(work, "backend");
  await Promise.all([
    run("npm", [...words.slice(1), "--prefer-offline", "--no-audit", "--no-fund"], {
      cwd: work,
      env: cleanEnv(),
    }),
    installTarballs(backend, [tarball]),
  ]);
  console.log(`e2e: client packed in ${packed} ms, installed in ${Date.now() - started} ms`);
}

/** The local stack, its state in a directory of its own (as test/e2e/artifact.test.ts runs it). */
async function startStack(): Promise<void> {
  await ensureBuilt();
  stackDir = join(work, "stack");
  await mkdir(stackDir);
  await symlink(join(REPO, "dist"), join(stackDir, "dist"));
  const stack = start(process.execPath, ["dist/devstack/start.js", ...EPHEMERAL_STACK_PORTS, "--no-demo"], {
    cwd: stackDir,
    env: cleanEnv(),
  });
  await stack.waitFor(/Press Ctrl-C to stop/, "the local stack to be ready", 120_000);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "e2e-install-"));
  // Independent, and each mostly waits on other processes: side by side.
  await Promise.all([packAndInstall(), startStack()]);
  serviceConfig = join(stackDir, ".devstack", "env");
  // The checkout's CLI registers the device; everything after runs from the installed package.
  const add = start(
    process.execPath,
    ["dist/bin/devicestream.js", "--config", serviceConfig, "dev", "add-device", DEVICE],
    { cwd: stackDir, env: cleanEnv() },
  );
  expect({
    code: (await withDeadline(add.exit, 60_000, "dev add-device")).code,
    stderr: add.stderr(),
  }).toEqual({
    code: 0,
    stderr: expect.anything(),
  });
  // The credential file as the page writes it (its keys are what `dev add-device` wrote for this
  // device), handed over as LoadCredential= does: a 0400 copy in a 0500 directory.
  const credentials = join(work, "credentials");
  await mkdir(credentials);
  await copyFile(join(stackDir, ".devstack", `agent-${DEVICE}.env`), join(credentials, "agent.env"));
  await chmod(join(credentials, "agent.env"), 0o400);
  await chmod(credentials, 0o500);
  // The installed unit's own ExecStart=, its prefix and %d resolved; --echo for a stream this test
  // can use without the sshd behind the shipped --allow ssh=... mapping.
  const unit = parseUnit(
    await readFile(join(inst, "node_modules", CLIENT, "systemd", "devicestream-agent.service"), "utf8"),
  );
  const execStart = splitWords(unitValues(unit, "Service", "ExecStart")[0] ?? "").map((w) =>
    w.replaceAll("/opt/devicestream", prefix).replaceAll("%d", credentials),
  );
  expect(execStart[0]).toBe(bin);
  const args = devicestreamArgs(execStart)!;
  agent = start(bin, [...args, "--echo"], {
    cwd: work,
    // What systemd gives a service: no inherited variable to lean on (node for the bin's shebang).
    env: { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, CREDENTIALS_DIRECTORY: credentials },
  });
  await agent.waitFor(
    /serving [^;]*\becho\b[^;]*; relay http:\/\/127\.0\.0\.1:\d+ hub streams/,
    "the installed agent",
    60_000,
  );
}, 600_000);

afterAll(async () => {
  await killAll();
  if (work) {
    // The credentials directory is read-only, as systemd makes it; rm needs to write it.
    await chmod(join(work, "credentials"), 0o700).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}, 60_000);

describe("the installed client", () => {
  it("holds only the client's runtime tree: no control plane, emulator, dev or optional package", async () => {
    const tree = await installedTree(inst);
    console.log(
      `e2e: installed client ${(tree.bytes / 1e6).toFixed(1)} MB, ${tree.names.length - 1} dependencies`,
    );
    expect(tree.names).toEqual(expect.arrayContaining([CLIENT, "azure-iot-device", "commander", "ws"]));
    const forbidden = [
      "@azure/functions",
      "@azure/data-tables",
      "@azure/identity",
      "azurite",
      "aedes",
      "jest",
    ];
    expect(tree.names.filter((n) => forbidden.includes(n))).toEqual([]);
    // The package is its build: declarations beside the code, no sources, no tests.
    const pkg = join(inst, "node_modules", CLIENT);
    expect(existsSync(join(pkg, "dist", "client", "sdk", "index.d.ts"))).toBe(true);
    expect(existsSync(join(pkg, "dist", "common", "ids.js"))).toBe(true);
    for (const file of ["README.md", "LICENSE"]) expect(existsSync(join(pkg, file))).toBe(true);
    expect(existsSync(join(pkg, "cli"))).toBe(false);
    // The bin link resolves into the installed package, not into this checkout.
    expect(await realpath(bin)).toBe(join(await realpath(pkg), "dist", "client", "bin", "devicestream.js"));
  });

  it("echo: 1 MiB through the installed agent, verified", async () => {
    const echo = installed(["--config", serviceConfig, "echo", DEVICE, "--bytes", "1M"]);
    const { code } = await withDeadline(echo.exit, 60_000, "echo");
    expect({ code, stderr: echo.stderr() }).toEqual({ code: EXIT.ok, stderr: "" });
    expect(echo.stdout()).toMatch(/^verified: 1048576 bytes echoed/m);
  });

  it("connect (the ssh ProxyCommand): stdin comes back on stdout byte for byte", async () => {
    const data = randomBytes(256 * 1024);
    // Raw bytes both ways: spawned here rather than through start(), which decodes output as text.
    const connect = spawn(bin, ["connect", DEVICE, "echo"], {
      cwd: inst,
      env: { ...cleanEnv(), DEVICESTREAM_CONFIG: serviceConfig },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    connect.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    connect.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    const exited = once(connect, "close") as Promise<[number | null]>;
    connect.stdin.end(data);
    const [code] = await withDeadline(exited, 60_000, "connect");
    expect({ code, stderr: Buffer.concat(err).toString() }).toEqual({ code: EXIT.ok, stderr: "" });
    expect(sha256(Buffer.concat(out))).toBe(sha256(data));
  });

  it("has no `dev` commands (they belong to the checkout's local stack)", async () => {
    const dev = installed(["dev", "add-device", "Another"]);
    expect((await withDeadline(dev.exit, 30_000, "dev")).code).toBe(EXIT.usage);
    expect(dev.stderr()).toMatch(/unknown command 'dev'/);
  });

  it("signs in with Entra ID only with the optional @azure/identity, and says how to add it", async () => {
    const entra = installed([
      "streams",
      "list",
      DEVICE,
      "--endpoint",
      "http://127.0.0.1:1",
      "--scope",
      "api://x/.default",
    ]);
    expect((await withDeadline(entra.exit, 30_000, "streams list")).code).toBe(EXIT.usage);
    expect(entra.stderr()).toMatch(
      /needs the optional package @azure\/identity: .*npm install -g @azure\/identity/,
    );
  });

  it("a TypeScript program imports the service SDK from the package, compiles strict against its declarations, and runs", async () => {
    const program = join(backend, "backend.ts");
    await writeFile(
      program,
      [
        `import { StreamsClient, isStreamsError, type StreamInfo } from "${CLIENT}";`,
        `import { StreamsClient as ServiceClient } from "${CLIENT}/service";`,
        `import { DeviceStreamListener } from "${CLIENT}/device";`,
        "",
        "async function main(connectionString: string, deviceId: string): Promise<void> {",
        "  if (ServiceClient !== StreamsClient || typeof DeviceStreamListener !== 'function') throw new Error('exports');",
        "  const client = StreamsClient.fromConnectionString(connectionString);",
        "  const stream = await client.openStream(deviceId, 'echo');",
        "  const channel = await stream.openChannel('backend.ts');",
        "  const chunks: Buffer[] = [];",
        "  channel.on('data', (b: Buffer) => chunks.push(b));",
        "  const ended = new Promise<void>((done) => channel.once('end', () => done()));",
        "  channel.end('hello from an installed SDK');",
        "  await ended;",
        "  const listed: StreamInfo[] = [];",
        "  for await (const s of client.listStreams(deviceId)) listed.push(s);",
        "  await stream.close();",
        "  const missing = await client.openStream('No-Such-Device', 'echo').catch((e: unknown) => e);",
        "  console.log(JSON.stringify({",
        "    echoed: Buffer.concat(chunks).toString(),",
        "    listed: listed.some((s) => s.streamId === stream.streamId),",
        "    missing: isStreamsError(missing) ? missing.code : String(missing),",
        "  }));",
        "}",
        "",
        "main(process.argv[2]!, process.argv[3]!).catch((e: unknown) => {",
        "  console.error(e);",
        "  process.exitCode = 1;",
        "});",
        "",
      ].join("\n"),
    );
    // tsc of this checkout, but every type it sees comes from the installed tree (skipLibCheck off).
    const tsc = join(REPO, "node_modules", "typescript", "bin", "tsc");
    const flags = ["--strict", "--noUncheckedIndexedAccess", "--module", "node16", "--target", "es2022"];
    await run(process.execPath, [tsc, ...flags, "--types", "node", "--outDir", "out", program], {
      cwd: backend,
    }).catch((e: Error & { stdout?: string }) => {
      throw new Error(`tsc: ${e.stdout ?? e.message}`);
    });
    const env = await readFile(serviceConfig, "utf8");
    const connectionString = /^DEVICESTREAM_CONNECTION_STRING=(.+)$/m.exec(env)![1]!;
    const { stdout } = await run(
      process.execPath,
      [join(backend, "out", "backend.js"), connectionString, DEVICE],
      {
        cwd: backend,
        env: cleanEnv(),
      },
    );
    expect(JSON.parse(stdout)).toEqual({
      echoed: "hello from an installed SDK",
      listed: true,
      missing: "DeviceNotFound",
    });
  });

  it("the installed agent stops cleanly on SIGTERM", async () => {
    expect((await stop(agent, "SIGTERM", 30_000)).code).toBe(EXIT.ok);
  });
});

/**
 * Issue 12 row 1, as an attacker would try it: `.devstack/env` files planted in the current
 * directory and in a parent (a cloned repository is enough), naming an endpoint the attacker
 * listens on, and a fake `az` on PATH that hands out a token, as a logged-in user's would. The
 * built CLI runs as a real process; the planted endpoint must see no connection at all.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import {
  type IncomingHttpHeaders,
  type Server as HttpServer,
  createServer as createHttpServer,
} from "node:http";
import { type AddressInfo, type Server, createServer } from "node:net";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT } from "../../client/cli/exitCodes";
import { cli, ensureBuilt, killAll } from "./support";

jest.setTimeout(120_000);

const KEY = Buffer.from("device-streams e2e planted-config test key!!").toString("base64");
const TOKEN = "fake-az-token-for-the-planted-config-test";

let ws: string;
let cwd: string;
let fakeBin: string;
let azCalls: string;
/** Where the planted files point: counts TCP connections, answers none. */
let planted: { server: Server; port: number; connections: number };
/** The user's own control plane: records each request, answers an empty list. */
let own: { server: HttpServer; port: number; requests: IncomingHttpHeaders[] };

const listening = (s: Server | HttpServer) =>
  new Promise<number>((resolve) =>
    s.listen(0, "127.0.0.1", () => resolve((s.address() as AddressInfo).port)),
  );

async function privateFile(path: string, text: string, mode = 0o600): Promise<string> {
  await writeFile(path, text, { mode });
  await chmod(path, mode);
  return path;
}

beforeAll(async () => {
  await ensureBuilt();
  ws = await mkdtemp(join(tmpdir(), "e2e-planted-"));
  const server = createServer((socket) => {
    planted.connections++;
    socket.destroy();
  });
  planted = { server, port: await listening(server), connections: 0 };
  const http = createHttpServer((req, res) => {
    own.requests.push(req.headers);
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ value: [] }));
  });
  own = { server: http, port: await listening(http), requests: [] };

  // The attacker's files: well-formed, private, loopback; only their location is wrong.
  const parent = join(ws, "clone");
  cwd = join(parent, "project", "sub");
  await mkdir(cwd, { recursive: true });
  for (const [dir, text] of [
    [
      parent,
      `DEVICESTREAM_ENDPOINT=http://127.0.0.1:${planted.port}\nDEVICESTREAM_SCOPE=api://planted/.default\n`,
    ],
    [
      cwd,
      `DEVICESTREAM_CONNECTION_STRING=Endpoint=http://127.0.0.1:${planted.port};SharedAccessKeyName=service;SharedAccessKey=${KEY}\n`,
    ],
  ] as const) {
    await mkdir(join(dir, ".devstack"), { mode: 0o700 });
    await privateFile(join(dir, ".devstack", "env"), text);
  }

  fakeBin = join(ws, "bin");
  azCalls = join(ws, "az-calls");
  await mkdir(fakeBin);
  await privateFile(
    join(fakeBin, "az"),
    [
      "#!/bin/sh",
      `echo "$*" >> '${azCalls}'`,
      `echo '{"accessToken":"${TOKEN}","expiresOn":"2099-01-01 00:00:00.000000","expires_on":4070908800,"tokenType":"Bearer"}'`,
      "",
    ].join("\n"),
    0o700,
  );
}, 300_000);

afterAll(async () => {
  await killAll();
  planted?.server.close();
  own?.server.close();
  await rm(ws, { recursive: true, force: true });
});

/** The CLI with the fake az first on PATH and no Azure or devicestream settings inherited. */
function run(args: string[], env: Record<string, string> = {}) {
  const clean: Record<string, string> = { PATH: `${fakeBin}:${process.env.PATH}` };
  for (const name of Object.keys(process.env)) {
    if (/^(AZURE_|DEVICESTREAM_|IDENTITY_|MSI_|IOTHUB_)/.test(name)) clean[name] = "";
  }
  return cli(args, { ...clean, ...env }, cwd);
}

const ownCs = () =>
  `Endpoint=http://127.0.0.1:${own.port};SharedAccessKeyName=service;SharedAccessKey=${KEY}`;
const azInvocations = async () =>
  existsSync(azCalls) ? (await readFile(azCalls, "utf8")).trim().split("\n") : [];

describe("a planted .devstack/env in the current directory and a parent (issue 12 row 1)", () => {
  it("the fake az does hand out its token to an endpoint the user names (so the test can see a leak)", async () => {
    const dir = await mkdtemp(join(ws, "named-"));
    const config = await privateFile(
      join(dir, "cli.env"),
      `DEVICESTREAM_ENDPOINT=http://127.0.0.1:${own.port}\nDEVICESTREAM_SCOPE=api://own/.default\n`,
    );
    const before = own.requests.length;
    const r = run(["streams", "list", "Some-Device", "--config", config]);
    expect({ exit: (await r.exit).code, stderr: r.stderr() }).toEqual({ exit: EXIT.ok, stderr: "" });
    expect(own.requests.slice(before).map((h) => h.authorization)).toEqual([`Bearer ${TOKEN}`]);
    expect((await azInvocations()).length).toBeGreaterThan(0);
  });

  it("DEVICESTREAM_CONNECTION_STRING in the environment is used; the planted endpoint sees no connection", async () => {
    const calls = (await azInvocations()).length;
    const before = own.requests.length;
    const r = run(["streams", "list", "Some-Device"], { DEVICESTREAM_CONNECTION_STRING: ownCs() });
    expect({ exit: (await r.exit).code, stderr: r.stderr() }).toEqual({ exit: EXIT.ok, stderr: "" });
    expect(own.requests.slice(before).map((h) => h.authorization)).toEqual([
      expect.stringMatching(/^SharedAccessSignature sr=127\.0\.0\.1&/),
    ]);
    expect(planted.connections).toBe(0);
    expect(await azInvocations()).toHaveLength(calls);
  });

  it("without credentials anywhere it says so; the planted files are not read", async () => {
    const dir = await mkdtemp(join(ws, "empty-"));
    const empty = await privateFile(join(dir, "cli.env"), "# nothing here\n");
    const calls = (await azInvocations()).length;
    const r = run(["streams", "list", "Some-Device"], { DEVICESTREAM_CONFIG: empty });
    expect((await r.exit).code).toBe(EXIT.usage);
    expect(r.stderr()).toMatch(/no control-plane credentials/);
    expect(planted.connections).toBe(0);
    expect(await azInvocations()).toHaveLength(calls);
  });

  it("a connection string in the environment wins over a named file's Entra endpoint and scope", async () => {
    const dir = await mkdtemp(join(ws, "entra-"));
    const config = await privateFile(
      join(dir, "cli.env"),
      `DEVICESTREAM_ENDPOINT=http://127.0.0.1:${planted.port}\nDEVICESTREAM_SCOPE=api://planted/.default\n`,
    );
    const calls = (await azInvocations()).length;
    const before = own.requests.length;
    const r = run(["streams", "list", "Some-Device", "--config", config], {
      DEVICESTREAM_CONNECTION_STRING: ownCs(),
    });
    expect({ exit: (await r.exit).code, stderr: r.stderr() }).toEqual({ exit: EXIT.ok, stderr: "" });
    expect(own.requests.length).toBe(before + 1);
    expect(planted.connections).toBe(0);
    expect(await azInvocations()).toHaveLength(calls);
  });

  it("an Entra endpoint over plain http that is not loopback is refused before az is asked", async () => {
    const calls = (await azInvocations()).length;
    const r = run([
      "streams",
      "list",
      "Some-Device",
      "--endpoint",
      "http://cp.example",
      "--scope",
      "api://x/.default",
    ]);
    expect((await r.exit).code).toBe(EXIT.usage);
    expect(r.stderr()).toMatch(/refusing to send an Entra ID token to http:\/\/cp\.example over plain http/);
    expect(await azInvocations()).toHaveLength(calls);
  });

  it("a group-writable --config file is refused, naming the fix", async () => {
    const dir = await mkdtemp(join(ws, "loose-"));
    const config = await privateFile(
      join(dir, "cli.env"),
      `DEVICESTREAM_CONNECTION_STRING=${ownCs()}\n`,
      0o664,
    );
    const before = own.requests.length;
    const r = run(["streams", "list", "Some-Device", "--config", config]);
    expect((await r.exit).code).toBe(EXIT.usage);
    expect(r.stderr()).toMatch(
      /configuration file .*cli\.env: is writable by others \(mode 664\); chmod 600 it/,
    );
    expect(own.requests.length).toBe(before);
  });
});

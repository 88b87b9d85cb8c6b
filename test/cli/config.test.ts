/**
 * The configuration rule (docs/decisions.md §1) for every setting the CLI reads: flags >
 * environment > file, the file's own checks, the checkout's file and the agent's trust.
 */
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError, parseRelayEndpoint, parseRelayHub } from "../../client/cli/args";
import {
  type FileAccess,
  type Settings,
  agentSettings,
  checkEntraEndpoint,
  checkoutConfigPath,
  readConfigFile,
  realFiles,
  resolveControlPlane,
  settings,
} from "../../client/cli/config";
import { relayFlags } from "../../client/cli/program";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "devicestream-config-")); // 0700
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function file(name: string, lines: Record<string, string>, mode = 0o600): Promise<string> {
  const path = join(dir, name);
  await writeFile(
    path,
    Object.entries(lines)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(""),
    { mode },
  );
  await chmod(path, mode);
  return path;
}

const CS = (host: string) => `Endpoint=http://${host};SharedAccessKeyName=service;SharedAccessKey=AAAA`;

describe("precedence: flags > environment > file, for every setting", () => {
  /**
   * Each setting, the code path that reads it (given the flag's value), and what it yields when the
   * setting is given at `top` and at every level below. The agent's trust never comes from the
   * environment (rule 5): there the file's value wins over the environment's.
   */
  type Row = {
    name: string;
    given: { flag?: string; env: string; file: string };
    read: (s: Settings, flag: string | undefined) => unknown;
    want: { flag?: unknown; env: unknown; file: unknown };
  };
  const agent = (s: Settings, flags: Parameters<typeof agentSettings>[0]) =>
    agentSettings(
      {
        connectionString: "HostName=h;DeviceId=d;SharedAccessKey=k",
        relayEndpoint: "https://a.webpubsub.azure.com",
        relayHub: "streams",
        ...flags,
      },
      s,
      {},
    );
  const plain = (name: string, flag: string | undefined, read: Row["read"]): Row => ({
    name,
    given: {
      ...(flag ? { flag: `${flag}-flag` } : {}),
      env: `${flag ?? "x"}-env`,
      file: `${flag ?? "x"}-file`,
    },
    read,
    want: {
      ...(flag ? { flag: `${flag}-flag` } : {}),
      env: `${flag ?? "x"}-env`,
      file: `${flag ?? "x"}-file`,
    },
  });
  const rows: Row[] = [
    {
      name: "DEVICESTREAM_CONNECTION_STRING",
      given: { flag: CS("flag:1"), env: CS("env:1"), file: CS("file:1") },
      read: (s, flag) =>
        (resolveControlPlane({ connectionString: flag }, s) as { connectionString: string }).connectionString,
      want: { flag: CS("flag:1"), env: CS("env:1"), file: CS("file:1") },
    },
    {
      name: "DEVICESTREAM_ENDPOINT",
      given: { flag: "https://flag", env: "https://env", file: "https://file" },
      read: (s, flag) =>
        (resolveControlPlane({ endpoint: flag, scope: "api://x/.default" }, s) as { endpoint: string })
          .endpoint,
      want: { flag: "https://flag", env: "https://env", file: "https://file" },
    },
    plain(
      "DEVICESTREAM_SCOPE",
      "scope",
      (s, flag) =>
        (resolveControlPlane({ endpoint: "https://cp", scope: flag }, s) as { scope: string }).scope,
    ),
    plain(
      "IOTHUB_DEVICE_CONNECTION_STRING",
      "cs",
      (s, flag) => agent(s, { connectionString: flag }).connectionString,
    ),
    {
      name: "IOTHUB_DEVICE_CA_FILE",
      given: { flag: "/flag.pem", env: "/env.pem", file: "/file.pem" },
      read: (s, flag) => agent(s, { caFile: flag }).caFile,
      want: { flag: "/flag.pem", env: "/file.pem", file: "/file.pem" },
    },
    {
      name: "DEVICESTREAM_RELAY_ENDPOINT",
      given: { flag: "https://flag.example", env: "https://env.example", file: "https://file.example" },
      read: (s, flag) => agent(s, { relayEndpoint: flag }).relay.endpoint,
      want: { flag: "https://flag.example", env: "https://file.example", file: "https://file.example" },
    },
    {
      name: "DEVICESTREAM_RELAY_HUB",
      given: { flag: "flagHub", env: "envHub", file: "fileHub" },
      read: (s, flag) => agent(s, { relayHub: flag }).relay.hub,
      want: { flag: "flagHub", env: "fileHub", file: "fileHub" },
    },
    {
      name: "DEVICESTREAM_ALLOW_INSECURE_RELAY",
      given: { flag: "on", env: "1", file: "0" },
      read: (s, flag) => agent(s, { allowInsecureRelay: flag === "on" }).relay.allowInsecure,
      want: { flag: true, env: false, file: false },
    },
    // `dev add-device`'s settings: no flags.
    ...["IOTHUB_CONNECTION_STRING", "IOTHUB_CA_FILE", "IOTHUB_HUB_HOSTNAME", "IOTHUB_GATEWAY_HOST"].map(
      (name) => plain(name, undefined, (s) => s.get(name)),
    ),
  ];

  const levels = ["flag", "env", "file"] as const;
  it.each(
    rows.flatMap((row) => levels.filter((l) => l in row.given).map((top) => [row.name, top, row] as const)),
  )("%s given at the %s level and every level below", async (_name, top, row) => {
    const below = levels.slice(levels.indexOf(top));
    const path = await file("config.env", { [row.name]: row.given.file });
    const s = settings({
      env: below.includes("env") ? { [row.name]: row.given.env } : {},
      configFlag: () => path,
    });
    expect(row.read(s, below.includes("flag") ? row.given.flag : undefined)).toEqual(row.want[top]);
  });
});

describe("which level names the control plane", () => {
  it("a connection string in the environment beats an Entra endpoint and scope in the file", async () => {
    const path = await file("c.env", {
      DEVICESTREAM_ENDPOINT: "http://127.0.0.1:1",
      DEVICESTREAM_SCOPE: "api://planted/.default",
    });
    const s = settings({ env: { DEVICESTREAM_CONNECTION_STRING: CS("env:1") }, configFlag: () => path });
    expect(resolveControlPlane({}, s)).toEqual({ kind: "sas", connectionString: CS("env:1") });
  });
  it("an endpoint flag beats a connection string in the environment", () => {
    const s = settings({ env: { DEVICESTREAM_CONNECTION_STRING: CS("env:1") }, configFlag: () => undefined });
    expect(resolveControlPlane({ endpoint: "https://cp", scope: "api://a/.default" }, s)).toEqual({
      kind: "entra",
      endpoint: "https://cp",
      scope: "api://a/.default",
    });
  });
  it("one level naming both is ambiguous", () => {
    const s = settings({
      env: { DEVICESTREAM_CONNECTION_STRING: CS("env:1"), DEVICESTREAM_ENDPOINT: "https://cp" },
      configFlag: () => undefined,
    });
    expect(() => resolveControlPlane({}, s)).toThrow(
      /the environment names both a connection string and an Entra ID endpoint/,
    );
  });
  it("nothing anywhere says how to configure it", () => {
    const s = settings({ env: {}, configFlag: () => undefined });
    expect(() => resolveControlPlane({}, s)).toThrow(/--config FILE or DEVICESTREAM_CONFIG/);
  });
});

describe("a configuration file is named, and checked like OpenSSH's StrictModes", () => {
  it("--config wins over DEVICESTREAM_CONFIG; DEVICESTREAM_CONFIG is read without --config", async () => {
    const a = await file("a.env", { DEVICESTREAM_SCOPE: "a" });
    const b = await file("b.env", { DEVICESTREAM_SCOPE: "b" });
    expect(settings({ env: { DEVICESTREAM_CONFIG: b }, configFlag: () => a }).get("DEVICESTREAM_SCOPE")).toBe(
      "a",
    );
    expect(
      settings({ env: { DEVICESTREAM_CONFIG: b }, configFlag: () => undefined }).get("DEVICESTREAM_SCOPE"),
    ).toBe("b");
  });

  it("accepts a 0600 file in a 0700 directory, and through a symbolic link", async () => {
    const path = await file("ok.env", { A: "1" });
    expect(readConfigFile(path, "explicit").values).toEqual({ A: "1" });
    await symlink(path, join(dir, "link.env"));
    expect(readConfigFile(join(dir, "link.env"), "explicit").values).toEqual({ A: "1" });
  });

  it.each([
    ["620", /is writable by others \(mode 620\); chmod 600 it/],
    ["602", /is writable by others \(mode 602\)/],
  ])("refuses a file of mode %s", async (mode, message) => {
    const path = await file("bad.env", { A: "1" }, parseInt(mode, 8));
    expect(() => readConfigFile(path, "explicit")).toThrow(message);
  });

  it("refuses a file in a group- or world-writable directory", async () => {
    const path = await file("ok.env", { A: "1" });
    await chmod(dir, 0o770);
    expect(() => readConfigFile(path, "explicit")).toThrow(
      /its directory .* is writable by others \(mode 770\); chmod 700 it/,
    );
    await chmod(dir, 0o1777);
    expect(() => readConfigFile(path, "explicit")).toThrow(/is writable by others \(mode 777\)/);
    await chmod(dir, 0o700);
  });

  it("refuses what is not a regular file, a missing file and an oversized one", async () => {
    await mkdir(join(dir, "d"));
    expect(() => readConfigFile(join(dir, "d"), "explicit")).toThrow(/is not a regular file/);
    expect(() => readConfigFile(join(dir, "missing"), "explicit")).toThrow(/cannot be read \(ENOENT\)/);
    const big = join(dir, "big.env");
    await writeFile(big, "A=" + "x".repeat(70_000), { mode: 0o600 });
    expect(() => readConfigFile(big, "explicit")).toThrow(/is larger than 65536 bytes/);
  });

  it("refuses a file or directory owned by someone else (not root)", async () => {
    const path = await file("ok.env", { A: "1" });
    const as = (uid: number, over: Partial<FileAccess>): FileAccess => ({ ...realFiles, uid, ...over });
    const me = realFiles.uid!;
    const stranger = me + 1000;
    const ownedBy = (owner: number) => (fd: number) => {
      const { mode, size } = realFiles.fstat(fd);
      return { isFile: () => true, uid: owner, mode, size };
    };
    expect(() => readConfigFile(path, "explicit", as(me, { fstat: ownedBy(stranger) }))).toThrow(
      new RegExp(`is owned by uid ${stranger}, not by you or root`),
    );
    expect(readConfigFile(path, "explicit", as(me, { fstat: ownedBy(0) })).values).toEqual({ A: "1" });
    const dirOwnedBy = (owner: number) => (p: string) => ({
      isDirectory: () => true,
      uid: owner,
      mode: realFiles.stat(p).mode,
    });
    expect(() => readConfigFile(path, "explicit", as(me, { stat: dirOwnedBy(stranger) }))).toThrow(
      /its directory .* is owned by uid/,
    );
  });

  /**
   * systemd's `LoadCredential=` (client/systemd/devicestream-agent.service): the copy is 0400 in a
   * read-only directory, owned by root with an ACL entry for the service's user (the ACL mask then
   * shows in the group bits: 0440 / 0550), or owned by the user itself where the file system has no
   * ACLs (0400 / 0500). systemd's src/core/exec-credential.c, write_credential() and
   * acquire_credentials().
   */
  it.each([
    ["root-owned with an ACL for the service's user", 0, 0o100440, 0o40550],
    ["owned by the service's user (no ACL support)", 61_234, 0o100400, 0o40500],
  ])(
    "accepts systemd's credentials directory as systemd makes it: %s",
    async (_, owner, fileMode, dirMode) => {
      const path = await file("agent.env", { DEVICESTREAM_RELAY_HUB: "streams" });
      const service: FileAccess = {
        ...realFiles,
        uid: 61_234, // a DynamicUser= uid
        fstat: (fd) => ({ ...realFiles.fstat(fd), isFile: () => true, uid: owner, mode: fileMode }),
        stat: () => ({ isDirectory: () => true, uid: owner, mode: dirMode }),
      };
      expect(readConfigFile(path, "explicit", service).values).toEqual({ DEVICESTREAM_RELAY_HUB: "streams" });
    },
  );

  it("the settings layer surfaces a refused file as a usage error when a setting falls through to it", async () => {
    const path = await file("bad.env", { DEVICESTREAM_SCOPE: "x" }, 0o660);
    const s = settings({ env: { DEVICESTREAM_SCOPE: "from-env" }, configFlag: () => path });
    expect(s.get("DEVICESTREAM_SCOPE")).toBe("from-env"); // never needed the file
    expect(() => s.get("DEVICESTREAM_ENDPOINT")).toThrow(UsageError);
  });
});

describe("the checkout's .devstack/env", () => {
  async function checkout(lines: Record<string, string>, dirMode = 0o700): Promise<string> {
    await mkdir(join(dir, ".devstack"), { mode: dirMode });
    await chmod(join(dir, ".devstack"), dirMode);
    const path = join(dir, ".devstack", "env");
    await writeFile(
      path,
      Object.entries(lines)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(""),
      { mode: 0o600 },
    );
    return path;
  }
  const from = (path: string, env: NodeJS.ProcessEnv = {}) =>
    settings({ env, configFlag: () => undefined, checkoutFile: path });

  it("is found from the CLI's own location (dist/bin), never the current directory", () => {
    expect(checkoutConfigPath("/src/repo/dist/bin")).toBe("/src/repo/.devstack/env");
    expect(checkoutConfigPath("/src/repo/bin")).toBeUndefined();
    expect(checkoutConfigPath("/usr/lib/node_modules/x/dist/client")).toBeUndefined();
  });

  it("supplies loopback service-side settings, and never the agent's identity or trust", async () => {
    const path = await checkout({
      DEVICESTREAM_CONNECTION_STRING: CS("localhost:7071"),
      IOTHUB_CONNECTION_STRING: "HostName=127.0.0.1:8443;SharedAccessKeyName=o;SharedAccessKey=k",
      IOTHUB_GATEWAY_HOST: "127.0.0.1:8883",
      IOTHUB_DEVICE_CONNECTION_STRING: "HostName=x;DeviceId=d;SharedAccessKey=k",
      DEVICESTREAM_RELAY_ENDPOINT: "https://planted.example",
      DEVICESTREAM_RELAY_HUB: "planted",
      DEVICESTREAM_ALLOW_INSECURE_RELAY: "1",
      IOTHUB_DEVICE_CA_FILE: "/planted.pem",
    });
    const s = from(path);
    expect(resolveControlPlane({}, s)).toEqual({ kind: "sas", connectionString: CS("localhost:7071") });
    expect(s.get("IOTHUB_GATEWAY_HOST")).toBe("127.0.0.1:8883");
    expect(s.get("IOTHUB_DEVICE_CONNECTION_STRING")).toBeUndefined();
    expect(s.get("DEVICESTREAM_RELAY_ENDPOINT")).toBeUndefined();
    expect(s.trusted("DEVICESTREAM_RELAY_ENDPOINT")).toBeUndefined();
    expect(s.trusted("IOTHUB_DEVICE_CA_FILE")).toBeUndefined();
  });

  it.each([
    ["DEVICESTREAM_CONNECTION_STRING", CS("evil.example:80")],
    ["DEVICESTREAM_ENDPOINT", "http://10.0.0.1"],
    ["IOTHUB_CONNECTION_STRING", "HostName=evil.example;SharedAccessKeyName=o;SharedAccessKey=k"],
    ["IOTHUB_GATEWAY_HOST", "evil.example:8883"],
  ])("is refused when %s names a host that is not loopback", async (name, value) => {
    const s = from(await checkout({ [name]: value }));
    expect(() => s.get("DEVICESTREAM_SCOPE")).toThrow(
      /which is not loopback; this file .* may only configure the local stack/,
    );
  });

  it("is refused unless .devstack/ is 0700", async () => {
    const s = from(await checkout({ DEVICESTREAM_SCOPE: "x" }, 0o755));
    expect(() => s.get("DEVICESTREAM_SCOPE")).toThrow(/must be private \(mode 755\); chmod 700 it/);
  });

  it("is not read when a file is named, and its absence is no error", async () => {
    const path = await checkout({ DEVICESTREAM_SCOPE: "checkout" });
    const named = await file("named.env", { DEVICESTREAM_ENDPOINT: "https://named" });
    const s = settings({ env: {}, configFlag: () => named, checkoutFile: path });
    expect(s.get("DEVICESTREAM_SCOPE")).toBeUndefined();
    expect(from(join(dir, "nowhere", "env")).get("DEVICESTREAM_SCOPE")).toBeUndefined();
  });
});

describe("agent trust values", () => {
  it.each([
    ["https://x.webpubsub.azure.com", "https://x.webpubsub.azure.com"],
    ["https://X.WebPubSub.Azure.com/", "https://x.webpubsub.azure.com"],
    ["http://127.0.0.1:8080", "http://127.0.0.1:8080"],
  ])("--relay-endpoint %s", (text, origin) => expect(parseRelayEndpoint(text)).toBe(origin));
  it.each([
    ["x.webpubsub.azure.com", /is not a URL/],
    ["wss://x.webpubsub.azure.com", /must be https:\/\//],
    ["https://x.webpubsub.azure.com/client/hubs/streams", /scheme and host only/],
    ["https://u:p@x.webpubsub.azure.com", /scheme and host only/],
    ["https://x.webpubsub.azure.com?hub=a", /scheme and host only/],
  ])("refuses --relay-endpoint %s", (text, message) =>
    expect(() => parseRelayEndpoint(text)).toThrow(message),
  );
  it("hub names", () => {
    expect(parseRelayHub("streams")).toBe("streams");
    expect(() => parseRelayHub("1abc")).toThrow(/not a Web PubSub hub name/);
    expect(() => parseRelayHub("a/b")).toThrow(/not a Web PubSub hub name/);
  });
  it("an http relay needs --allow-insecure-relay; a bad yes/no value is an error", async () => {
    const s = settings({ env: {}, configFlag: () => undefined });
    const flags = { connectionString: "cs", relayEndpoint: "http://127.0.0.1:1", relayHub: "h" };
    expect(() => agentSettings(flags, s, {})).toThrow(/is plain http: add --allow-insecure-relay/);
    const path = await file("a.env", { DEVICESTREAM_ALLOW_INSECURE_RELAY: "yes" });
    expect(() => agentSettings(flags, settings({ env: {}, configFlag: () => path }), {})).toThrow(
      /DEVICESTREAM_ALLOW_INSECURE_RELAY must be 1 or 0, got 'yes'/,
    );
  });
  it("`devicestream endpoints` turns the control plane's client endpoint into the agent's flags", () => {
    expect(
      relayFlags({ endpoint: "wss://x.webpubsub.azure.com/client/hubs/streams", hub: "streams" }),
    ).toEqual({
      endpoint: "https://x.webpubsub.azure.com",
      hub: "streams",
    });
    expect(relayFlags({ endpoint: "ws://127.0.0.1:8080/client/hubs/streams", hub: "streams" })).toEqual({
      endpoint: "http://127.0.0.1:8080",
      hub: "streams",
    });
  });
});

describe("an Entra token never goes to a plain-http endpoint that is not loopback", () => {
  it.each(["http://127.0.0.1:7071", "http://localhost:7071", "http://[::1]:7071", "https://cp.example"])(
    "%s is fine",
    (url) => expect(checkEntraEndpoint(url).href).toBe(new URL(url).href),
  );
  it.each(["http://cp.example", "http://10.0.0.1:7071", "http://127.0.0.1.evil.example"])(
    "%s is refused",
    (url) =>
      expect(() => checkEntraEndpoint(url)).toThrow(/refusing to send an Entra ID token .* over plain http/),
  );
});

/**
 * Where the CLI's settings come from: docs/decisions.md §1, the configuration rule.
 *
 * - Flags > environment > configuration file, for every setting (flags are the caller's: it asks
 *   `get` only when the flag is absent).
 * - A file is only ever named: `--config FILE` or `DEVICESTREAM_CONFIG`. Nothing walks up from the
 *   current directory.
 * - Without one, the checkout's own `.devstack/env` (located from the CLI's own file, never the
 *   current directory) is read for service-side settings only, and only when every endpoint it
 *   names is loopback.
 * - The agent's trust (relay, insecure relay, IoT Hub CA) comes only from flags or a named file:
 *   `trusted()`, which reads neither the environment nor the checkout's file.
 */
import { closeSync, fstatSync, openSync, readFileSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { isLoopbackHost, isLoopbackHostPort } from "../../common/loopback";
import type { DeviceStreamListenerOptions } from "../sdk/device";
import { UsageError, parseEnvFile, parseFlagSetting, parseRelayEndpoint, parseRelayHub } from "./args";

export const CONNECTION_STRING_VAR = "DEVICESTREAM_CONNECTION_STRING";
export const CONFIG_VAR = "DEVICESTREAM_CONFIG";
/** The secret the gateway verifies tickets with: never a flag (`ps` shows flags). */
export const GATEWAY_SECRET_VAR = "DEVICESTREAM_GATEWAY_SECRET";

/** Settings of the agent's trust: never from the environment or the checkout's file. */
export const TRUST_SETTINGS = [
  "DEVICESTREAM_RELAY_ENDPOINT",
  "DEVICESTREAM_RELAY_HUB",
  "DEVICESTREAM_ALLOW_INSECURE_RELAY",
  "IOTHUB_DEVICE_CA_FILE",
] as const;

/** The agent's identity: the general rule (flag, environment, file). */
export const DEVICE_CONNECTION_STRING_VAR = "IOTHUB_DEVICE_CONNECTION_STRING";

/** Every key the agent reads from its `--config` file (docs/device-install.md lists them). */
export const AGENT_FILE_SETTINGS: readonly string[] = [DEVICE_CONNECTION_STRING_VAR, ...TRUST_SETTINGS];

/** What the checkout's `.devstack/env` may supply: the service side of the local stack. */
export const CHECKOUT_SETTINGS: readonly string[] = [
  CONNECTION_STRING_VAR,
  "DEVICESTREAM_ENDPOINT",
  "DEVICESTREAM_SCOPE",
  "IOTHUB_CONNECTION_STRING",
  "IOTHUB_CA_FILE",
  "IOTHUB_HUB_HOSTNAME",
  "IOTHUB_GATEWAY_HOST",
  "DEMO_DEVICE_ID",
  // The local gateway's ticket secret (npm start), so its printed gateway commands work as printed.
  GATEWAY_SECRET_VAR,
  // `npm start -- --keyless`: the local Entra ID's client credentials and the local CA.
  "AZURE_AUTHORITY_HOST",
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_ID",
  "AZURE_CLIENT_SECRET",
  "DEVICESTREAM_ENTRA_CA_FILE",
];

/** A configuration file is a handful of lines; anything larger is not one. */
const MAX_CONFIG_BYTES = 64 * 1024;

export interface ConfigFile {
  /** As the user named it (or the checkout's path). */
  readonly path: string;
  /** `explicit`: --config / DEVICESTREAM_CONFIG; `checkout`: the checkout's `.devstack/env`. */
  readonly kind: "explicit" | "checkout";
  /** The directory the file really lives in (symbolic links resolved). */
  readonly dir: string;
  readonly values: Readonly<Record<string, string>>;
}

/** Seams for tests: the file system calls the checks make, and the user they check against. */
export interface FileAccess {
  realpath(path: string): string;
  open(path: string): number;
  fstat(fd: number): { isFile(): boolean; uid: number; mode: number; size: number };
  stat(path: string): { isDirectory(): boolean; uid: number; mode: number };
  read(fd: number): string;
  close(fd: number): void;
  /** undefined where there are no POSIX owners (Windows): ownership and modes are not checked. */
  uid: number | undefined;
}

export const realFiles: FileAccess = {
  realpath: (p) => realpathSync(p),
  open: (p) => openSync(p, "r"),
  fstat: (fd) => fstatSync(fd),
  stat: (p) => statSync(p),
  read: (fd) => readFileSync(fd, "utf8"),
  close: (fd) => closeSync(fd),
  uid: typeof process.getuid === "function" ? process.getuid() : undefined,
};

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(3, "0");

/**
 * Reads a configuration file under rule 3 (OpenSSH's StrictModes): a regular file owned by the
 * user or root, and neither it nor its directory writable by group or others. The checks run on
 * the opened file (fstat), so the file checked is the file read.
 */
export function readConfigFile(
  path: string,
  kind: ConfigFile["kind"],
  fs: FileAccess = realFiles,
  options: { privateDirectory?: boolean } = {},
): ConfigFile {
  const refuse = (why: string): never => {
    throw new UsageError(`configuration file ${path}: ${why}`);
  };
  let real: string;
  let fd: number;
  try {
    real = fs.realpath(path);
    fd = fs.open(real);
  } catch (err) {
    return refuse(`cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    const st = fs.fstat(fd);
    if (!st.isFile()) refuse("is not a regular file");
    if (st.size > MAX_CONFIG_BYTES) refuse(`is larger than ${MAX_CONFIG_BYTES} bytes`);
    const dir = dirname(real);
    const dst = fs.stat(dir);
    if (fs.uid !== undefined) {
      if (st.uid !== fs.uid && st.uid !== 0) refuse(`is owned by uid ${st.uid}, not by you or root`);
      if ((st.mode & 0o022) !== 0) refuse(`is writable by others (mode ${octal(st.mode)}); chmod 600 it`);
      if (dst.uid !== fs.uid && dst.uid !== 0) refuse(`its directory ${dir} is owned by uid ${dst.uid}`);
      if ((dst.mode & 0o022) !== 0)
        refuse(`its directory ${dir} is writable by others (mode ${octal(dst.mode)}); chmod 700 it`);
      if (options.privateDirectory && (dst.mode & 0o077) !== 0)
        refuse(`its directory ${dir} must be private (mode ${octal(dst.mode)}); chmod 700 it`);
    }
    return { path, kind, dir, values: parseEnvFile(fs.read(fd)) };
  } finally {
    fs.close(fd);
  }
}

/** Every endpoint the checkout's file names must be loopback: it configures the local stack only. */
function checkoutEndpointProblem(values: Readonly<Record<string, string>>): string | undefined {
  const urls: [string, string | undefined][] = [
    [CONNECTION_STRING_VAR, /(?:^|;)\s*Endpoint=([^;]*)/i.exec(values[CONNECTION_STRING_VAR] ?? "")?.[1]],
    ["DEVICESTREAM_ENDPOINT", values.DEVICESTREAM_ENDPOINT],
    ["AZURE_AUTHORITY_HOST", values.AZURE_AUTHORITY_HOST],
  ];
  for (const [name, value] of urls) {
    if (value === undefined || value === "") continue;
    let host: string;
    try {
      host = new URL(value).hostname;
    } catch {
      return `${name} names an endpoint that is not a URL`;
    }
    if (!isLoopbackHost(host)) return `${name} names ${host}, which is not loopback`;
  }
  const hostPorts: [string, string | undefined][] = [
    [
      "IOTHUB_CONNECTION_STRING",
      /(?:^|;)\s*HostName=([^;]*)/i.exec(values.IOTHUB_CONNECTION_STRING ?? "")?.[1],
    ],
    ["IOTHUB_GATEWAY_HOST", values.IOTHUB_GATEWAY_HOST],
  ];
  for (const [name, value] of hostPorts) {
    if (value !== undefined && value !== "" && !isLoopbackHostPort(value))
      return `${name} names ${value}, which is not loopback`;
  }
  return undefined;
}

/**
 * `<checkout>/.devstack/env` for the CLI whose compiled entry point lives in `binDir`
 * (`<checkout>/dist/bin`); undefined when it does not run from a build (no checkout to speak of).
 */
export function checkoutConfigPath(binDir: string): string | undefined {
  const dist = dirname(binDir);
  return basename(binDir) === "bin" && basename(dist) === "dist"
    ? join(dirname(dist), ".devstack", "env")
    : undefined;
}

function readCheckoutFile(path: string, fs: FileAccess): ConfigFile | undefined {
  try {
    fs.stat(path);
  } catch {
    return undefined; // no `npm start` here: nothing to read, and nothing to say
  }
  const file = readConfigFile(path, "checkout", fs, { privateDirectory: true });
  const problem = checkoutEndpointProblem(file.values);
  if (problem) {
    throw new UsageError(
      `${path}: ${problem}; this file (read without --config) may only configure the local stack. ` +
        `Name a configuration file with --config FILE or ${CONFIG_VAR} instead`,
    );
  }
  const values: Record<string, string> = {};
  for (const name of CHECKOUT_SETTINGS) if (file.values[name] !== undefined) values[name] = file.values[name];
  return { ...file, values };
}

export interface Settings {
  /** A setting whose flag was not given: the environment, then the configuration file. */
  get(name: string): string | undefined;
  /** The environment only ("" counts as unset: `NAME=` is how a shell clears a variable). */
  fromEnv(name: string): string | undefined;
  /** The configuration file only (the named one, else the checkout's, restricted as above). */
  fromFile(name: string): string | undefined;
  /** The agent's trust: a named configuration file only. */
  trusted(name: (typeof TRUST_SETTINGS)[number]): string | undefined;
  /** The file in use, if any (read on first call). */
  file(): ConfigFile | undefined;
}

export interface SettingsSource {
  env: NodeJS.ProcessEnv;
  /** `--config`, once the command line is parsed. */
  configFlag: () => string | undefined;
  /** The checkout's `.devstack/env`; undefined when the CLI does not run from a checkout. */
  checkoutFile?: string | undefined;
  fs?: FileAccess;
}

export function settings(source: SettingsSource): Settings {
  const fs = source.fs ?? realFiles;
  const nonEmpty = (v: string | undefined) => (v === undefined || v === "" ? undefined : v);
  let loaded: { file: ConfigFile | undefined } | undefined;
  const file = () => {
    if (!loaded) {
      const named = source.configFlag() ?? nonEmpty(source.env[CONFIG_VAR]);
      loaded = {
        file: named
          ? readConfigFile(named, "explicit", fs)
          : source.checkoutFile
            ? readCheckoutFile(source.checkoutFile, fs)
            : undefined,
      };
    }
    return loaded.file;
  };
  const fromEnv = (name: string) => nonEmpty(source.env[name]);
  const fromFile = (name: string) => nonEmpty(file()?.values[name]);
  return {
    get: (name) => fromEnv(name) ?? fromFile(name),
    fromEnv,
    fromFile,
    trusted: (name) => {
      const f = file();
      return f?.kind === "explicit" ? nonEmpty(f.values[name]) : undefined;
    },
    file,
  };
}

export function requireConnectionString(flag: string | undefined, s: Settings): string {
  const value = flag ?? s.get(CONNECTION_STRING_VAR);
  if (!value) {
    throw new UsageError(
      `no control-plane credentials: pass --connection-string, set ${CONNECTION_STRING_VAR} ` +
        `(Endpoint=...;SharedAccessKeyName=...;SharedAccessKey=...), or name a configuration file ` +
        `with --config FILE or ${CONFIG_VAR} (npm start writes .devstack/env)`,
    );
  }
  return value;
}

/**
 * The gateway's ticket secret as text: DEVICESTREAM_GATEWAY_SECRET from the environment, then the
 * configuration file (gatewaySecretFromText takes its bytes and checks their length).
 */
export function gatewaySecretText(s: Settings): string {
  const text = s.get(GATEWAY_SECRET_VAR);
  if (!text) {
    throw new UsageError(
      `no gateway secret: set ${GATEWAY_SECRET_VAR} (at least 32 bytes, e.g. \`openssl rand -base64 32\`) ` +
        `in the environment or in the file named by --config FILE or ${CONFIG_VAR}`,
    );
  }
  return text;
}

/** How the service side reaches the control plane, from the highest level that names one. */
export type ControlPlane =
  { kind: "sas"; connectionString: string } | { kind: "entra"; endpoint: string; scope: string };

/**
 * Flags, then the environment, then the file: the first level that names a connection string or
 * an Entra endpoint decides, whatever a lower level says (a connection string in the environment
 * beats an endpoint in a file). A level naming both is ambiguous, and refused.
 */
export function resolveControlPlane(
  flags: { connectionString?: string | undefined; endpoint?: string | undefined; scope?: string | undefined },
  s: Settings,
): ControlPlane {
  const levels = [
    { from: "flags", cs: () => flags.connectionString, endpoint: () => flags.endpoint },
    {
      from: "the environment",
      cs: () => s.fromEnv(CONNECTION_STRING_VAR),
      endpoint: () => s.fromEnv("DEVICESTREAM_ENDPOINT"),
    },
    {
      from: "the configuration file",
      cs: () => s.fromFile(CONNECTION_STRING_VAR),
      endpoint: () => s.fromFile("DEVICESTREAM_ENDPOINT"),
    },
  ];
  for (const level of levels) {
    const cs = level.cs();
    const endpoint = level.endpoint();
    if (cs && endpoint) {
      throw new UsageError(
        `${level.from} names both a connection string and an Entra ID endpoint: give one ` +
          "(--connection-string / DEVICESTREAM_CONNECTION_STRING or --endpoint / DEVICESTREAM_ENDPOINT)",
      );
    }
    if (cs) return { kind: "sas", connectionString: cs };
    if (endpoint) {
      const scope = flags.scope ?? s.get("DEVICESTREAM_SCOPE");
      if (!scope)
        throw new UsageError("Entra ID needs the control plane's scope: --scope or DEVICESTREAM_SCOPE");
      return { kind: "entra", endpoint, scope };
    }
  }
  return { kind: "sas", connectionString: requireConnectionString(undefined, s) };
}

/**
 * An Entra token is a bearer credential for the user: never over plain http to another machine
 * (docs/decisions.md §1 rule 6). Checked before any token is requested.
 */
export function checkEntraEndpoint(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UsageError(`--endpoint '${endpoint}' is not a URL`);
  }
  if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
    throw new UsageError(
      `refusing to send an Entra ID token to ${url.origin} over plain http: use https (http only for loopback)`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new UsageError(`--endpoint '${endpoint}' must be an https URL`);
  return url;
}

export interface AgentFlags {
  connectionString?: string | undefined;
  caFile?: string | undefined;
  /** Already parsed by parseRelayEndpoint / parseRelayHub. */
  relayEndpoint?: string | undefined;
  relayHub?: string | undefined;
  allowInsecureRelay?: boolean | undefined;
}

export interface AgentSettings {
  connectionString: string;
  caFile?: string;
  relay: DeviceStreamListenerOptions["relay"] & { allowInsecure: boolean };
}

/** Trust settings found in the environment, which the agent does not read: worth a warning. */
export function ignoredTrustSettings(s: Settings): string[] {
  return TRUST_SETTINGS.filter((name) => s.fromEnv(name) !== undefined);
}

/**
 * The agent's settings. Its identity follows the general rule (flag, environment, file); its trust
 * (the relay, insecure relay, the IoT Hub CA) comes from flags or a named configuration file only
 * (docs/decisions.md §1 rule 5), so an inherited variable or a planted file cannot widen it.
 */
export function agentSettings(flags: AgentFlags, s: Settings, env: NodeJS.ProcessEnv): AgentSettings {
  const connectionString = flags.connectionString ?? s.get(DEVICE_CONNECTION_STRING_VAR);
  if (!connectionString) {
    throw new UsageError(
      `no device identity: pass --connection-string, set ${DEVICE_CONNECTION_STRING_VAR}, or put it in the --config file`,
    );
  }
  const trusted = (name: (typeof TRUST_SETTINGS)[number], parse: (t: string) => string) => {
    const text = s.trusted(name);
    return text === undefined ? undefined : parse(text);
  };
  const endpoint = flags.relayEndpoint ?? trusted("DEVICESTREAM_RELAY_ENDPOINT", parseRelayEndpoint);
  const hub = flags.relayHub ?? trusted("DEVICESTREAM_RELAY_HUB", parseRelayHub);
  if (!endpoint || !hub) {
    throw new UsageError(
      "the agent needs the one relay it may join: --relay-endpoint URL --relay-hub HUB, as " +
        "`devicestream endpoints` prints them (or DEVICESTREAM_RELAY_ENDPOINT and DEVICESTREAM_RELAY_HUB " +
        "in the --config file)",
    );
  }
  const allowInsecure =
    flags.allowInsecureRelay === true ||
    parseFlagSetting("DEVICESTREAM_ALLOW_INSECURE_RELAY", s.trusted("DEVICESTREAM_ALLOW_INSECURE_RELAY"));
  if (endpoint.startsWith("http:") && !allowInsecure) {
    throw new UsageError(
      `relay endpoint ${endpoint} is plain http: add --allow-insecure-relay (a local emulator only)`,
    );
  }
  const caFile = flags.caFile ?? s.trusted("IOTHUB_DEVICE_CA_FILE");
  return {
    connectionString,
    ...(caFile ? { caFile } : {}),
    relay: { endpoint, hub, allowInsecure, proxyEnv: env },
  };
}

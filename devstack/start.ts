import type { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ROUTE_PREFIX, type RouteTable } from "../shared/http/routeTypes";
import { parseDevStackArgs, USAGE, type DevStackOptions } from "./args";
import { startAzuriteTable } from "./azurite";
import { startLocalHost } from "./host";
import { relayEventHandler } from "./controlPlaneHost";
import { createLogger, type Logger } from "../shared/log";
import { productionDeps, repositoryRoot } from "./main";
import {
  type KeylessStack,
  keylessChildSignals,
  runKeylessChild,
  scrubbedEnv,
  startKeyless,
} from "./keyless";
import { PortInUseError, isAddressInUse } from "./ports";
import { startIotHubEmulator, type IotHubEmulator } from "../emulators/iothub";
import { startWebPubSubEmulator } from "../emulators/webpubsub";
import { DEV_HUB, DEV_SAS_RESOURCE, clientSettings, localSettings } from "./settings";
import { SECOND_DEMO_DEVICE_ID, startDemoDevice, type DemoDevice } from "./demo";
import { labelFor } from "../client/gateway/hostname";
import { GATEWAY_SECRET_VAR } from "../client/cli/config";
import { userInfo } from "node:os";

export interface DevStackDeps {
  /**
   * Builds the control plane. Settings are read through the getter when the first request
   * arrives: the Web PubSub emulator needs the host's URL for its event handler, so the host
   * starts before every setting is known.
   */
  createRouteTable: (
    env: () => NodeJS.ProcessEnv,
    options: DevStackOptions,
  ) => RouteTable | Promise<RouteTable>;
  /** Settings the local ones are layered under; `process.env` by default. */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Where infra/ lives (the role assignments of `--keyless`); this repository by default. */
  repoRoot?: string;
}

export interface DevStack {
  readonly endpoints: {
    functions: string;
    api: string;
    tables: string;
    webPubSub: string;
    iotHubHttps: string;
    iotHubMqtt: string;
  };
  /** The settings the control plane runs with (the user's, then the local stack's). */
  readonly env: NodeJS.ProcessEnv;
  /** What `.devstack/env` holds, for the CLI and the banner. */
  readonly clientEnv: Record<string, string>;
  readonly iotHub: IotHubEmulator;
  /** The demo device, unless `--no-demo`. */
  readonly demo?: DemoDevice;
  /** Every demo device: `demo`, then `demo-device-01` (same ID but for case, another device). */
  readonly demos: readonly DemoDevice[];
  /** `--keyless`: the local Entra ID and the request counts of every service. */
  readonly keyless?: KeylessStack;
  close(): Promise<void>;
}

/** A start-up failure worded for the person at the terminal. */
export class DevStackStartError extends Error {
  override readonly name = "DevStackStartError";
}

/** Turns "address in use" into which service, which port, and the flag that moves it. */
function portHint(err: unknown, port: number, host: string, flag: string, service: string): unknown {
  if (!(err instanceof PortInUseError) && !isAddressInUse(err)) return err;
  return new DevStackStartError(
    `port ${port} on ${host} is already in use (${service}). ` +
      `Stop whatever is using it, or choose another port: npm start -- ${flag} <n>`,
  );
}

async function step<T>(run: () => Promise<T>, port: number, host: string, flag: string, service: string) {
  try {
    return await run();
  } catch (err) {
    throw portHint(err, port, host, flag, service);
  }
}

/**
 * The secret the printed `gateway` and `gateway ticket` commands share (read from `.devstack/env`
 * like the other service-side settings): 32 random bytes, base64url, kept across restarts so that
 * a running gateway still accepts the tickets printed after a restart.
 */
async function gatewaySecret(stateDir: string): Promise<string> {
  const previous = await readFile(join(stateDir, "env"), "utf8").catch(() => "");
  const kept = new RegExp(`^${GATEWAY_SECRET_VAR}=([A-Za-z0-9_-]{43})$`, "m").exec(previous)?.[1];
  return kept ?? randomBytes(32).toString("base64url");
}

/**
 * Writes KEY=value lines that the checkout's CLI reads by itself (or any CLI with `--config`). The
 * mode option only applies to a file it creates, hence the chmod.
 */
async function writeEnvFile(stateDir: string, values: Record<string, string>): Promise<void> {
  const lines = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  const file = join(stateDir, "env");
  await writeFile(file, `# written by npm start; local development values only\n${lines.join("\n")}\n`, {
    mode: 0o600,
  });
  await chmod(file, 0o600);
}

/**
 * `.devstack/` holds keys, a CA key and the table database: the directory and every directory in it
 * 0700, every file 0600 (docs/decisions.md §1 rule 7). New files get this from the umask `npm start`
 * sets; this fixes what an earlier run or another tool left. Symbolic links are left alone.
 */
export async function makePrivate(dir: string): Promise<void> {
  await chmod(dir, 0o700);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await makePrivate(path);
    else if (entry.isFile()) await chmod(path, 0o600);
  }
}

/**
 * Starts the local stack: Azurite (tables), the IoT Hub emulator, the control plane on the local
 * Functions host, and the Web PubSub emulator whose event handler points at the control plane.
 * Whatever started is stopped again, in reverse order, if a later step fails.
 */
export async function runDevStack(options: DevStackOptions, deps: DevStackDeps): Promise<DevStack> {
  const logger = deps.logger ?? createLogger();
  const { host } = options;
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  await makePrivate(options.stateDir);
  const started: { close(): Promise<void> }[] = [];
  const closeStarted = async () => {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
  };
  try {
    const keyless = options.keyless
      ? await startKeyless({
          host,
          stateDir: options.stateDir,
          repoRoot: deps.repoRoot ?? repositoryRoot(),
          log: (line) => logger.log("info", line, { service: "entra-emulator" }),
        })
      : undefined;
    if (keyless) started.push(keyless);
    const azurite = await step(
      () =>
        startAzuriteTable({
          host,
          port: options.tablePort,
          persistDir: join(options.stateDir, "azurite"),
          ...keyless?.azurite(options.stateDir),
        }),
      options.tablePort,
      host,
      "--table-port",
      "Azurite table service",
    );
    started.push(azurite);
    const iotHub = await step(
      () =>
        startIotHubEmulator({
          host,
          mqttPort: options.mqttPort,
          httpsPort: options.iotHubPort,
          stateDir: resolve(options.stateDir, "iothub"),
          log: (line) => logger.log("info", line, { service: "iothub-emulator" }),
          ...keyless?.iotHub(),
        }),
      options.iotHubPort,
      host,
      options.mqttPort === options.iotHubPort ? "--iothub-port" : "--mqtt-port or --iothub-port",
      "IoT Hub emulator",
    );
    started.push(iotHub);

    const base = deps.env ?? process.env;
    const env: NodeJS.ProcessEnv = keyless
      ? scrubbedEnv(base)
      : { ...base, ...localSettings(azurite.connectionString, iotHub) };
    const table = await deps.createRouteTable(() => env, options);
    const functions = await step(
      () => startLocalHost({ table, host, port: options.port, logger }),
      options.port,
      host,
      "--port",
      "functions host",
    );
    started.push(functions);
    const webPubSub = await step(
      () =>
        startWebPubSubEmulator({
          host,
          port: options.webPubSubPort,
          eventHandlers: { [DEV_HUB]: relayEventHandler(functions.url) },
          logger: (line) => logger.log("info", line, { service: "webpubsub-emulator" }),
          ...keyless?.webPubSub(relayEventHandler(functions.url)),
        }),
      options.webPubSubPort,
      host,
      "--webpubsub-port",
      "Web PubSub emulator",
    );
    started.push(webPubSub);
    if (keyless) {
      Object.assign(
        env,
        keyless.controlPlaneSettings({
          tableEndpoint: azurite.tableEndpoint,
          webPubSubEndpoint: webPubSub.endpoint,
          iotHubHostName: `${new URL(webPubSub.endpoint).hostname}:${iotHub.httpsPort}`,
          sasResource: DEV_SAS_RESOURCE,
        }),
      );
    } else env.WEBPUBSUB_CONNECTION_STRING = webPubSub.connectionString;

    const demos: DemoDevice[] = [];
    if (options.demo) {
      for (const [deviceId, sshPort] of [
        [undefined, options.demoSshPort],
        [SECOND_DEMO_DEVICE_ID, undefined],
      ] as const) {
        const device = await startDemoDevice({
          iotHub,
          relayEndpoint: webPubSub.endpoint,
          host,
          ...(deviceId ? { deviceId } : {}),
          ...(sshPort !== undefined ? { sshPort } : {}),
          log: (line) => logger.log("info", line, { service: "demo-device" }),
        });
        started.push(device);
        demos.push(device);
      }
    }
    const demo = demos[0];

    const clientEnv = {
      ...(keyless ? keyless.clientSettings(functions.url) : clientSettings(functions.port, iotHub)),
      ...(demo ? { DEMO_DEVICE_ID: demo.deviceId } : {}),
      [GATEWAY_SECRET_VAR]: await gatewaySecret(options.stateDir),
    };
    await writeEnvFile(options.stateDir, clientEnv);
    await makePrivate(options.stateDir);
    let closing: Promise<void> | undefined;
    return {
      endpoints: {
        functions: functions.url,
        api: `${functions.url}/${ROUTE_PREFIX}`,
        tables: azurite.tableEndpoint,
        webPubSub: webPubSub.endpoint,
        iotHubHttps: `https://${host}:${iotHub.httpsPort}`,
        iotHubMqtt: `mqtts://${host}:${iotHub.mqttPort}`,
      },
      env,
      clientEnv,
      iotHub,
      ...(demo ? { demo } : {}),
      demos,
      ...(keyless ? { keyless } : {}),
      close() {
        closing ??= closeStarted().then(() => logger.log("info", "local stack stopped"));
        return closing;
      },
    };
  } catch (err) {
    await closeStarted();
    throw err;
  }
}

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Where SIGINT/SIGTERM arrive; `process` in production, an emitter in tests. */
  signals: Pick<EventEmitter, "once" | "off">;
}

const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** The next stop signal, with a way to stop listening so no handler outlives the command. */
function nextSignal(signals: CliIo["signals"]): { received: Promise<string>; cancel: () => void } {
  let cancel = () => {};
  const received = new Promise<string>((resolve) => {
    const handlers = STOP_SIGNALS.map((name) => {
      const handler = () => {
        cancel();
        resolve(name);
      };
      return [name, handler] as const;
    });
    cancel = () => handlers.forEach(([name, handler]) => signals.off(name, handler));
    handlers.forEach(([name, handler]) => signals.once(name, handler));
  });
  return { received, cancel };
}

function banner(stack: DevStack, options: DevStackOptions): string {
  const e = stack.endpoints;
  return [
    "",
    "device-streams local stack is ready",
    `  Control plane (Functions host)  ${e.api}`,
    `  Function app                    ${options.app || "this repository (package.json main)"}`,
    `  Azurite table service           ${e.tables}`,
    `  Web PubSub emulator             ${e.webPubSub}`,
    `  IoT Hub emulator                ${e.iotHubHttps} (REST), ${e.iotHubMqtt} (devices)`,
    `  IoT Hub CA (trust it)           ${stack.iotHub.caPath}`,
    `  State directory                 ${options.stateDir}`,
    "",
    ...credentialLines(stack, options),
    "",
    ...configLines(options),
    "",
    ...(stack.demo ? demoLines(stack.demos, options) : ["  Demo device                     off (--no-demo)"]),
    "",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");
}

/** SAS mode: the connection string. Keyless: who signs in with what (no secret printed). */
function credentialLines(stack: DevStack, options: DevStackOptions): string[] {
  const file = join(options.stateDir, "env");
  if (!stack.keyless) {
    return [
      `Service connection string (also in ${file}):`,
      `  DEVICESTREAM_CONNECTION_STRING="${stack.clientEnv.DEVICESTREAM_CONNECTION_STRING}"`,
    ];
  }
  const e = stack.clientEnv;
  return [
    "Keyless (Azure mode): no key or connection string in the control plane's settings.",
    `  Local Entra ID (authority)      ${e.AZURE_AUTHORITY_HOST} (tenant ${e.AZURE_TENANT_ID})`,
    `  Managed identity endpoint       ${stack.keyless.entra.identityEndpoint}`,
    `  CLI signs in as                 ${e.AZURE_CLIENT_ID} (client credentials in ${file})`,
    `  CLI scope                       ${e.DEVICESTREAM_SCOPE}`,
  ];
}

/**
 * How the CLI finds the stack's settings. This checkout's CLI reads `<checkout>/.devstack/env` by
 * itself; any other CLI, or a `--state-dir` elsewhere, names the file.
 */
function configLines(options: DevStackOptions): string[] {
  const file = resolve(options.stateDir, "env");
  return [
    `CLI settings: ${file} (0600; service side only)`,
    "  read by this checkout's CLI by itself when its state directory is <checkout>/.devstack;",
    `  otherwise: --config ${file}  or  export DEVICESTREAM_CONFIG=${file}`,
  ];
}

/** The CLI as it runs from the repository root after `npm start` has built it. */
export const CLI = "node dist/bin/devicestream.js";

/** The copy-paste commands; each line starting with `$ ` is run verbatim by test/e2e. */
export function demoCommands(
  deviceId: string,
  options: Pick<DevStackOptions, "demoForwardPort" | "demoGatewayPort">,
) {
  const gatewayPort = options.demoGatewayPort;
  return {
    echo: `${CLI} echo ${deviceId} --bytes 16M`,
    forward: `${CLI} forward ${deviceId} web --listen ${options.demoForwardPort}`,
    browserUrl: `http://127.0.0.1:${options.demoForwardPort}/`,
    ssh: `ssh -o ProxyCommand='${CLI} connect %n ssh' ${userInfo().username}@${deviceId}`,
    gateway: `${CLI} gateway --base-domain localhost --listen 127.0.0.1:${gatewayPort}`,
    /** The one-time login URL of a device's `web` through the gateway. */
    ticket: (id: string) => `${CLI} gateway ticket ${id} web --base-domain localhost --port ${gatewayPort}`,
    /** Where that device's page is once logged in: its own host name (docs/gateway.md). */
    gatewayUrl: (id: string) =>
      `http://${labelFor({ deviceId: id, streamName: "web" })}.localhost:${gatewayPort}/`,
  };
}

function demoLines(demos: readonly DemoDevice[], options: DevStackOptions): string[] {
  const [demo, ...others] = demos as [DemoDevice, ...DemoDevice[]];
  const c = demoCommands(demo.deviceId, options);
  const registered = (d: DemoDevice) => `${d.reused ? "reused from" : "registered in"} ${options.stateDir}`;
  return [
    `  Demo device                     ${demo.deviceId} (${registered(demo)}), serving echo, web, ssh -> 127.0.0.1:${options.demoSshPort}`,
    ...others.map(
      (d) =>
        `  Second demo device              ${d.deviceId} (${registered(d)}), serving ${d.names.join(", ")}`,
    ),
    "",
    "Try it, from the repository root in another terminal:",
    "  1. echo: send 16 MB through the demo device and verify it comes back",
    `  $ ${c.echo}`,
    `  2. browser: forward the device's web page, then open ${c.browserUrl}`,
    `  $ ${c.forward}`,
    `  3. SSH to this machine's sshd (port ${options.demoSshPort}) through the device`,
    `  $ ${c.ssh}`,
    "  4. gateway: every device's web page in a browser on this machine, each on its own host name,",
    `     behind a one-time login URL (tickets are signed with ${GATEWAY_SECRET_VAR} from .devstack/env)`,
    `  $ ${c.gateway}`,
    "     then, in a third terminal, print each device's login URL and open it in the browser:",
    ...demos.map((d) => `  $ ${c.ticket(d.deviceId)}`),
    ...demos.map((d) => `     ${d.deviceId.padEnd(16)} then lives at ${c.gatewayUrl(d.deviceId)}`),
    "  Another device: node dist/bin/devicestream.js dev add-device NAME",
  ];
}

/**
 * `npm start`: parse, start, print the endpoints, run until SIGINT/SIGTERM, stop cleanly. Resolves
 * with the exit code; a second signal while stopping gives up waiting (130).
 */
export async function runCli(argv: readonly string[], deps: DevStackDeps, io: CliIo): Promise<number> {
  const parsed = parseDevStackArgs(argv);
  if (!parsed.ok) {
    io.stderr(`devstack: ${parsed.error}\n\n${USAGE}`);
    return 2;
  }
  const options = parsed.options;
  if (options.help) {
    io.stdout(USAGE);
    return 0;
  }
  // Listen before starting, so a Ctrl-C during start-up still stops what has started.
  const stop = nextSignal(io.signals);
  let stack: DevStack;
  try {
    stack = await runDevStack(options, deps);
  } catch (err) {
    stop.cancel();
    io.stderr(`devstack: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  io.stdout(banner(stack, options));
  const signal = await stop.received;
  io.stdout(`\n${signal}: stopping…\n`);
  if (stack.keyless) io.stdout(`${stack.keyless.summary()}\n`);
  const force = nextSignal(io.signals);
  const outcome = await Promise.race([
    stack.close().then(() => "closed" as const),
    force.received.then(() => "forced" as const),
  ]);
  force.cancel();
  if (outcome === "forced") {
    io.stderr("devstack: stopped without waiting for a clean shutdown\n");
    return 130;
  }
  io.stdout("stopped.\n");
  return 0;
}

if (require.main === module) {
  // Everything the stack writes (Azurite's database, the emulators' keys, the env files) is
  // private to the user from the start: new files 0600, new directories 0700.
  process.umask(0o077);
  void (async () => {
    const argv = process.argv.slice(2);
    const parsed = parseDevStackArgs(argv);
    const viaChild =
      parsed.ok && parsed.options.keyless ? await runKeylessChild(parsed.options, argv) : undefined;
    return (
      viaChild ??
      runCli(argv, productionDeps(), {
        stdout: (text) => process.stdout.write(text),
        stderr: (text) => process.stderr.write(text),
        signals: keylessChildSignals(),
      })
    );
  })().then((code) => process.exit(code));
}

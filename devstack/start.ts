import type { EventEmitter } from "node:events";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { ROUTE_PREFIX, type RouteTable } from "../shared/http/routeTypes";
import { parseDevStackArgs, USAGE, type DevStackOptions } from "./args";
import { startAzuriteTable, type AzuriteTable } from "./azurite";
import { startLocalHost, type LocalHost } from "./host";
import { createLogger, type Logger } from "../shared/log";
import { productionDeps } from "./main";
import { PortInUseError } from "./ports";

export interface DevStackDeps {
  /** Builds the control plane from settings; `runDevStack` adds the local ones (see below). */
  createRouteTable: (env: NodeJS.ProcessEnv) => RouteTable | Promise<RouteTable>;
  /** Settings the local ones are layered on; `process.env` by default. */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
}

export interface DevStack {
  readonly endpoints: { functions: string; api: string; tables: string };
  /** The settings the route table was built from, including the local storage connection. */
  readonly env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

/** A start-up failure worded for the person at the terminal. */
export class DevStackStartError extends Error {
  override readonly name = "DevStackStartError";
}

function portHint(err: unknown, flag: string): unknown {
  if (!(err instanceof PortInUseError)) return err;
  return new DevStackStartError(
    `port ${err.port} on ${err.host} is already in use (${err.service}). ` +
      `Stop whatever is using it, or choose another port: npm start -- ${flag} <n>`,
  );
}

/**
 * Starts the local stack: Azurite's table service, then the control plane's route table on the
 * local Functions host. Whatever started is stopped again if a later step fails.
 */
export async function runDevStack(options: DevStackOptions, deps: DevStackDeps): Promise<DevStack> {
  const logger = deps.logger ?? createLogger();
  await mkdir(options.stateDir, { recursive: true });
  let azurite: AzuriteTable;
  try {
    azurite = await startAzuriteTable({
      host: options.host,
      port: options.tablePort,
      persistDir: join(options.stateDir, "azurite"),
    });
  } catch (err) {
    throw portHint(err, "--table-port");
  }
  let host: LocalHost;
  // AzureWebJobsStorage is the Functions host's own storage setting; locally it points at Azurite.
  const env: NodeJS.ProcessEnv = {
    ...(deps.env ?? process.env),
    AzureWebJobsStorage: azurite.connectionString,
  };
  try {
    const table = await deps.createRouteTable(env);
    host = await startLocalHost({ table, host: options.host, port: options.port, logger });
  } catch (err) {
    await azurite.close();
    throw portHint(err, "--port");
  }
  let closing: Promise<void> | undefined;
  return {
    endpoints: { functions: host.url, api: `${host.url}/${ROUTE_PREFIX}`, tables: azurite.tableEndpoint },
    env,
    close() {
      closing ??= host
        .close()
        .finally(() => azurite.close())
        .then(() => logger.log("info", "local stack stopped"));
      return closing;
    },
  };
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
  return [
    "",
    "device-streams local stack is ready",
    `  Control plane (Functions host)  ${stack.endpoints.api}`,
    `  Azurite table service           ${stack.endpoints.tables}`,
    `  State directory                 ${options.stateDir}`,
    options.demo
      ? "  Demo device                     not part of the stack yet"
      : "  Demo device                     off (--no-demo)",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");
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
  void runCli(process.argv.slice(2), productionDeps(), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    signals: process,
  }).then((code) => process.exit(code));
}

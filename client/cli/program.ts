/**
 * `devicestream`: a thin CLI over the SDKs (docs/cli.md). Everything it touches (stdio, environment,
 * working directory, shutdown signal) is injected, so tests run it in process. Each command group
 * is a module of commands/; only light modules load at start, and each command loads its SDK when
 * it runs (load.ts), so `--help` and `sas` never load the relay, the IoT device SDK or
 * @azure/identity.
 */
import { Command, CommanderError } from "commander";
import { escapeControl, safeJson } from "../../common/text";
import { registerDeviceCommand } from "./commands/device";
import { registerGatewayCommands } from "./commands/gateway";
import { registerSasCommand } from "./commands/sas";
import { relayFlags, serviceClient } from "./commands/service";
import { registerStreamsCommands } from "./commands/streams";
import { registerTunnelCommands } from "./commands/tunnel";
import { settings } from "./config";
import { EXIT, exitCodeFor } from "./exitCodes";
import type { CliExtensionContext, CliIo, CommandContext } from "./io";

export type { CliExtension, CliExtensionContext, CliIo } from "./io";
export { relayFlags } from "./commands/service";

export function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  let program: Command | undefined = undefined;
  const s = settings({
    env: io.env,
    configFlag: () => program?.opts<{ config?: string }>().config,
    checkoutFile: io.checkoutConfig,
  });
  const out = (text: string) => io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  const err = (text: string) => io.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
  /** A log line that carries text a device, the relay or the control plane chose. */
  const logLine = (line: string) => err(escapeControl(line));
  const print = (json: boolean | undefined, value: unknown, human: () => string) =>
    out(json ? safeJson(value, 2) : human());

  program = new Command("devicestream")
    .description("Secure TCP tunnels to IoT devices by device ID (docs/cli.md)")
    .exitOverride()
    .configureOutput({ writeOut: (t) => io.stdout.write(t), writeErr: (t) => io.stderr.write(t) })
    .showHelpAfterError("(run with --help for usage)")
    .option("-v, --verbose", "debug lines on stderr (e.g. whatever is left open once the command is over)")
    .option(
      "--config <file>",
      "configuration file of KEY=value lines (or DEVICESTREAM_CONFIG); flags and the environment win over it",
    );

  const ctx: CommandContext = { io, settings: s, out, err, logLine, print, setExit };
  registerDeviceCommand(program, ctx);
  registerTunnelCommands(program, ctx);
  registerStreamsCommands(program, ctx);
  registerSasCommand(program, ctx);
  registerGatewayCommands(program, ctx);

  const context: CliExtensionContext = {
    settings: s,
    out,
    err,
    cwd: io.cwd,
    relay: async () => relayFlags((await (await serviceClient({}, s)).getEndpoints()).relay),
  };
  for (const extend of io.extensions ?? []) extend(program, context);

  return program;
}

/** Runs the CLI; resolves with the exit code. Errors print one line saying what to do. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exit: number = EXIT.ok;
  const program = buildProgram(io, (code) => (exit = code));
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      exit = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    } else {
      io.stderr.write(`devicestream: ${describe(e)}\n`);
      exit = exitCodeFor(e);
    }
  }
  if (program.opts<{ verbose?: boolean }>().verbose === true && io.openHandles) {
    // A command must end with nothing of its own left open: the bin's forced exit would hide a leak.
    const open = await io.openHandles();
    io.stderr.write(
      open.length === 0
        ? "devicestream: debug: nothing left open\n"
        : `devicestream: debug: still open after the command: ${open.join(", ")}\n`,
    );
  }
  return exit;
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const details = (e as { details?: Record<string, unknown> }).details;
  const reason = details && typeof details.reason === "string" ? ` (device says: ${details.reason})` : "";
  const code = (e as { code?: unknown }).code;
  const hint =
    code === "DeviceNotOnline"
      ? "; is the agent (`devicestream device`) running and connected?"
      : code === "RelayNotAllowed"
        ? "; pass --allow-insecure-relay only for a local emulator"
        : "";
  // The message and the reason come from the control plane, a device or the relay.
  return escapeControl(`${e.message.replace(/\.$/, "")}${reason}${hint}`);
}

/**
 * Argument parsing for the `webpubsub-emulator` bin, as a pure function so it can be tested
 * table-driven; the bin only starts the emulator with the result.
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { isValidHubName, WELL_KNOWN_ACCESS_KEY, type WebPubSubEmulatorOptions } from "./options";

export type CliResult =
  | {
      kind: "run";
      options: Required<Pick<WebPubSubEmulatorOptions, "port" | "host" | "accessKey" | "eventHandlers">>;
    }
  | { kind: "exit"; code: number; output: string };

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError("must be an integer 0..65535.");
  return n;
}

/** `<hub>=<urlTemplate>`; the template may use `{hub}` and `{event}`. */
export function parseEventHandler(
  value: string,
  previous: Record<string, string> = {},
): Record<string, string> {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError('expected "<hub>=<urlTemplate>".');
  const hub = value.slice(0, eq);
  const url = value.slice(eq + 1);
  if (!isValidHubName(hub)) throw new InvalidArgumentError(`invalid hub name "${hub}".`);
  try {
    const parsed = new URL(url.replace(/\{(hub|event)\}/g, "x"));
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("scheme");
  } catch {
    throw new InvalidArgumentError(`"${url}" is not an http(s) URL template.`);
  }
  if (Object.keys(previous).some((h) => h.toLowerCase() === hub.toLowerCase())) {
    throw new InvalidArgumentError(`hub "${hub}" has more than one event handler.`);
  }
  return { ...previous, [hub]: url };
}

export function parseCli(argv: readonly string[]): CliResult {
  let output = "";
  const program = new Command("webpubsub-emulator")
    .description("A protocol-compatible local Azure Web PubSub.")
    .option("--port <port>", "port to listen on (0 picks a free one)", port, 8080)
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .option("--access-key <key>", "access key (default: the official emulator's well-known key)")
    .option("--event-handler <hub=urlTemplate>", "event handler of a hub; repeatable", parseEventHandler, {})
    .exitOverride()
    .configureOutput({ writeOut: (s) => (output += s), writeErr: (s) => (output += s) })
    .allowExcessArguments(false);
  try {
    program.parse(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) return { kind: "exit", code: err.exitCode, output };
    throw err;
  }
  const o = program.opts<{
    port: number;
    host: string;
    accessKey?: string;
    eventHandler: Record<string, string>;
  }>();
  return {
    kind: "run",
    options: {
      port: o.port,
      host: o.host,
      accessKey: o.accessKey ?? WELL_KNOWN_ACCESS_KEY,
      eventHandlers: o.eventHandler,
    },
  };
}

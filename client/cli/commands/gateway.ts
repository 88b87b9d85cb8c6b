/**
 * `devicestream gateway`: the multi-device reverse proxy (docs/gateway.md), and `gateway ticket`,
 * which prints a one-time login URL the way a website's backend would make one.
 */
import type { Command } from "commander";
import { ID_RULE, STREAM_NAME_RULE, isLegalId, isLegalStreamName } from "../../../common/ids";
import type { DeviceTarget } from "../../sdk/service";
import { UsageError, parseListen, parsePort, parsePositiveInt } from "../args";
import { type Settings, gatewaySecretText } from "../config";
import { type CommandContext, waitForAbort } from "../io";
import { load } from "../load";
import { type ServiceFlags, serviceClient, serviceOptions } from "./service";

/** `--allow DEVICE[/MODULE]/NAME`: `/` is in no device ID, module ID or stream name (`:` is in all three). */
export function parseAllowTarget(text: string): DeviceTarget {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3) {
    throw new UsageError(`--allow expects DEVICE/NAME or DEVICE/MODULE/NAME, got '${text}'`);
  }
  const [deviceId, moduleId, streamName] =
    parts.length === 2 ? [parts[0]!, undefined, parts[1]!] : [parts[0]!, parts[1]!, parts[2]!];
  if (!isLegalId(deviceId)) throw new UsageError(`--allow '${text}': the device ID must be ${ID_RULE}`);
  if (moduleId !== undefined && !isLegalId(moduleId))
    throw new UsageError(`--allow '${text}': the module ID must be ${ID_RULE}`);
  if (!isLegalStreamName(streamName))
    throw new UsageError(`--allow '${text}': the stream name must be ${STREAM_NAME_RULE}`);
  return { deviceId, ...(moduleId !== undefined ? { moduleId } : {}), streamName };
}

const sameTarget = (a: DeviceTarget, b: DeviceTarget) =>
  a.deviceId === b.deviceId && a.moduleId === b.moduleId && a.streamName === b.streamName;

/** The secret's bytes; a short one is a RangeError (exit 2) naming the minimum. */
const gatewaySecret = (s: Settings) => load.service().gatewaySecretFromText(gatewaySecretText(s));

const collect = (value: string, previous: DeviceTarget[] = []) => [...previous, parseAllowTarget(value)];

export function registerGatewayCommands(program: Command, ctx: CommandContext): void {
  const { io, settings: s, out, err, logLine } = ctx;
  const gateway = serviceOptions(
    program
      .command("gateway")
      .description(
        "serve many devices' web servers on <label>.<base-domain> host names, each request with the " +
          "user's ticket (secret: DEVICESTREAM_GATEWAY_SECRET in the environment or the --config file)",
      )
      // Not required here: `gateway ticket` shares it (commander gives a parent's options to the parent).
      .option("--base-domain <domain>", "device hosts are <label>.<domain> (localhost for local use)")
      .option("--listen <[host:]port>", "local address (default 127.0.0.1:8080)", parseListen)
      .option("--allow <device[/module]/name>", "open only these targets (repeatable)", collect)
      .option(
        "--host-header <device|original|value>",
        "Host the device sees: localhost (device, the default), the gateway's host name, or a value",
      )
      .option("--https", "users reach the gateway over https (a TLS proxy in front): Secure cookies")
      .option(
        "--idle-close <seconds>",
        "close a target's streams after this long without a request (default 30)",
        (t) => parsePositiveInt(t, "--idle-close", 86_400),
      ),
  ).action(async (o: ServiceFlags & Record<string, unknown>) => {
    if (typeof o.baseDomain !== "string")
      throw new UsageError("gateway needs --base-domain <domain> (localhost for local use)");
    const secret = gatewaySecret(s);
    const client = await serviceClient(o, s);
    const { startGateway } = load.gateway();
    const { createGatewayAuth } = load.gatewayAuth();
    const allowList = o.allow as DeviceTarget[] | undefined;
    const https = o.https === true;
    const server = await startGateway({
      client,
      baseDomain: o.baseDomain,
      listen: (o.listen as { host: string; port: number } | undefined) ?? { host: "127.0.0.1", port: 8080 },
      auth: createGatewayAuth({ secret, secureCookies: https }),
      proto: https ? "https" : "http",
      ...(allowList ? { allow: (t: DeviceTarget) => allowList.some((a) => sameTarget(a, t)) } : {}),
      ...(typeof o.hostHeader === "string" ? { hostHeader: o.hostHeader } : {}),
      ...(typeof o.idleClose === "number" ? { idleCloseInMs: o.idleClose * 1000 } : {}),
      log: logLine,
    });
    err(`gateway on ${server.url}: devices at http://<label>.${o.baseDomain}:${server.port}/`);
    io.onReady?.({ command: "gateway", address: { host: new URL(server.url).hostname, port: server.port } });
    await waitForAbort(io.signal);
    await server.close();
  });

  gateway
    .command("ticket")
    .description(
      "print a one-time login URL for a device's page through the gateway (as a website would); " +
        "--base-domain as the gateway's (default localhost)",
    )
    .argument("<device>", "device ID (case-sensitive)")
    .argument("<name>", "stream name the device maps to its web server")
    .option("--module <id>", "module identity running the agent")
    .option("--port <port>", "the gateway's port in the URL (default 8080 for localhost)", (t) =>
      parsePort(t, "--port"),
    )
    .option("--ttl <seconds>", "how long the ticket may be used (default 60, at most 300)", (t) =>
      parsePositiveInt(t, "--ttl", 300),
    )
    .action(async (deviceId: string, streamName: string, o: Record<string, unknown>, cmd: Command) => {
      const secret = gatewaySecret(s);
      const target: DeviceTarget = {
        deviceId,
        ...(typeof o.module === "string" ? { moduleId: o.module } : {}),
        streamName,
      };
      const { gatewayLoginUrl, issueTicket } = load.service();
      const baseDomain = cmd.parent?.opts<{ baseDomain?: string }>().baseDomain ?? "localhost";
      const local = baseDomain === "localhost";
      const port = (o.port as number | undefined) ?? (local ? 8080 : undefined);
      const ticket = await issueTicket(
        secret,
        target,
        typeof o.ttl === "number" ? { ttlSeconds: o.ttl } : {},
      );
      out(
        gatewayLoginUrl(
          { baseDomain, scheme: local ? "http" : "https", ...(port ? { port } : {}) },
          target,
          ticket,
        ),
      );
    });
}

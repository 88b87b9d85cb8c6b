/** `devicestream sas`: mints a control-plane SAS token locally (docs/cli.md). */
import type { Command } from "commander";
import { MAX_SAS_TTL_SECONDS, mintSasToken } from "../../../common/sas";
import { parseConnectionString } from "../../sdk/service/connectionString";
import { parseTtl } from "../args";
import { requireConnectionString } from "../config";
import type { CommandContext } from "../io";

export function registerSasCommand(program: Command, ctx: CommandContext): void {
  const { settings: s, print } = ctx;
  program
    .command("sas")
    .description("mint a control-plane SAS token (defaults from the connection string)")
    .option("--connection-string <cs>", "control plane connection string")
    .option("--policy <name>", "SAS policy name")
    .option("--key <base64>", "SAS policy key")
    .option("--resource <sr>", "the control plane's SAS resource (default: its host name)")
    .option(
      "--ttl <duration>",
      `lifetime: seconds, or 30m, 12h, 7d (at most ${MAX_SAS_TTL_SECONDS / 86400}d)`,
      (v) => parseTtl(v, MAX_SAS_TTL_SECONDS),
      3600,
    )
    .option("--json", "machine-readable output")
    .action((o: Record<string, unknown>) => {
      let policyName = o.policy as string | undefined;
      let key = o.key as string | undefined;
      let resource = o.resource as string | undefined;
      if (!policyName || !key || !resource) {
        const cs = parseConnectionString(
          requireConnectionString(o.connectionString as string | undefined, s),
        );
        policyName ??= cs.policyName;
        key ??= cs.key;
        resource ??= cs.sasResource ?? new URL(cs.endpoint).hostname;
      }
      const ttlSeconds = o.ttl as number;
      const token = mintSasToken({ resource, policyName, key, ttlSeconds });
      const expiresAt = new Date(Date.now() + ttlSeconds * 1000).toISOString();
      print(o.json as boolean | undefined, { token, expiresAt }, () => token);
    });
}

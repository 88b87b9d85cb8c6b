/**
 * The role-assignment table of the local stack, read from the Bicep in infra/: every
 * `Microsoft.Authorization/roleAssignments` we deploy, as (identity, role GUID, scope type). The
 * local services check bearer tokens against it, so the grants the templates declare are the ones
 * the keyless stack runs with: a grant missing in infra/ fails locally as it would in Azure.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path/posix";
import { loadBicep, templatePaths } from "../infra/check/files";
import type { BicepFile } from "../infra/check/parser";
import { declarationBody, deployed, resources } from "../infra/check/resources";
import { call, propertyAt, propertyValue, stringValue } from "../infra/check/syntax";

export interface DeclaredAssignment {
  /** The identity module in main.bicep whose principal is granted, e.g. `appIdentity`. */
  readonly identity: string;
  readonly roleDefinitionId: string;
  /** Resource type of the scope, e.g. `Microsoft.SignalRService/webPubSub`. */
  readonly scope: string;
  /** Where it is declared, for messages. */
  readonly declaredIn: string;
}

/** `x.outputs.principalId` → `x`; the module argument a template's `principalId` param receives. */
function identityOf(main: BicepFile, file: BicepFile, param: string): string | undefined {
  for (const node of main.root.namedChildren.filter((c) => c.type === "module_declaration")) {
    const source = stringValue(node.namedChildren[1]);
    if (source === undefined || join(dirname(main.path), source) !== file.path) continue;
    const arg = propertyAt(declarationBody(node), "params", param)?.text;
    const symbol = arg && /^(\w+)\.outputs\.principalId$/.exec(arg)?.[1];
    if (symbol) return symbol;
    // A main.bicep parameter, e.g. `principalId` (azd's AZURE_PRINCIPAL_ID: whoever deploys).
    if (arg && /^\w+$/.test(arg)) return arg;
  }
  return undefined;
}

/** Reads the table from parsed templates (main.bicep first) and roles.json (key → GUID). */
export function declaredAssignments(
  files: readonly BicepFile[],
  roles: Readonly<Record<string, string>>,
): DeclaredAssignment[] {
  const [main] = files;
  if (!main) return [];
  const out: DeclaredAssignment[] = [];
  for (const file of files) {
    const byName = new Map(resources(file.root).map((r) => [r.symbol, r.type]));
    for (const ra of deployed(file.root, "Microsoft.Authorization/roleAssignments")) {
      const scopeType = byName.get(propertyValue(ra.body, "scope")?.text ?? "");
      const principal = propertyAt(ra.body, "properties", "principalId")?.text;
      const roleArg = call(propertyAt(ra.body, "properties", "roleDefinitionId"))?.args.at(-1)?.text;
      const roleKey = /^roles\.(\w+)$/.exec(roleArg ?? "")?.[1];
      const roleDefinitionId = roleKey ? roles[roleKey] : undefined;
      const identity = principal ? identityOf(main, file, principal) : undefined;
      if (!scopeType || !roleDefinitionId || !identity) {
        throw new Error(`${file.path}: role assignment ${ra.symbol} cannot be read for the local stack`);
      }
      out.push({ identity, roleDefinitionId, scope: scopeType, declaredIn: `${file.path}#${ra.symbol}` });
    }
  }
  return out;
}

/** The table of the repository at `repoRoot`. */
export async function loadDeclaredAssignments(repoRoot: string): Promise<DeclaredAssignment[]> {
  const infra = join(repoRoot, "infra");
  const files = await loadBicep(repoRoot, templatePaths(infra));
  const roles = JSON.parse(readFileSync(join(infra, "app", "roles.json"), "utf8")) as Record<string, string>;
  return declaredAssignments(files, roles);
}

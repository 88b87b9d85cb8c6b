// Role assignments must be idempotent and reviewable: named guid(scope.id, principalId,
// roleId) so re-deploying never creates a duplicate (RoleAssignmentExists), and with an
// explicit principalType so ARM does not race Entra replication looking the principal up.
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { deployed } from "../resources";
import { call, propertyAt, propertyValue, stringValue } from "../syntax";

const RULE = "role-assignment";
const PRINCIPAL_TYPES = new Set(["ServicePrincipal", "User", "Group", "ForeignGroup", "Device"]);

/** The built-in roles issue 7 grants the app identity, by their key in infra/app/roles.json. */
export const REQUIRED_ROLES = [
  "storageTableDataContributor",
  "storageBlobDataOwner",
  "webPubSubServiceOwner",
  "iotHubDataContributor",
  "monitoringMetricsPublisher",
] as const;

/** Checks each role assignment; returns the role-id expressions they grant (e.g. `roles.x`). */
function checkFile(file: BicepFile, findings: Finding[]): string[] {
  const granted: string[] = [];
  for (const ra of deployed(file.root, "Microsoft.Authorization/roleAssignments")) {
    const report = (message: string): void =>
      void findings.push(finding(file, ra.node, RULE, `${ra.symbol}: ${message}`));
    const name = call(propertyValue(ra.body, "name"));
    const [scopeArg, principalArg, roleArg] =
      name?.name === "guid" && name.args.length === 3 ? name.args : [];
    if (!scopeArg || !principalArg || !roleArg) {
      report("name must be guid(<scope>.id, <principalId>, <roleId>)");
      continue;
    }
    const scope = propertyValue(ra.body, "scope");
    if (scope?.type !== "identifier") {
      report("needs an explicit `scope:` naming the resource the role is granted on");
    } else if (scopeArg.text !== `${scope.text}.id`) {
      report(`guid() must start with ${scope.text}.id (the scope), not ${scopeArg.text}`);
    }
    const principalId = propertyAt(ra.body, "properties", "principalId");
    if (principalId?.text !== principalArg.text) {
      report(
        `guid() principal ${principalArg.text} differs from properties.principalId ${principalId?.text ?? "(none)"}`,
      );
    }
    const principalType = propertyAt(ra.body, "properties", "principalType");
    const literalType = stringValue(principalType);
    if (!principalType || (literalType !== undefined && !PRINCIPAL_TYPES.has(literalType))) {
      report("needs an explicit properties.principalType (ServicePrincipal, User, Group, ...)");
    }
    const roleDefinition = call(propertyAt(ra.body, "properties", "roleDefinitionId"));
    if (!roleDefinition?.args.some((a) => a.text === roleArg.text)) {
      report(`guid() role ${roleArg.text} is not the one properties.roleDefinitionId grants`);
    }
    granted.push(roleArg.text);
  }
  return granted;
}

export function roleAssignmentRule(files: readonly BicepFile[]): Finding[] {
  const findings: Finding[] = [];
  const granted = new Set(files.flatMap((f) => checkFile(f, findings)));
  const entry = files[0];
  for (const role of REQUIRED_ROLES) {
    if (entry && !granted.has(`roles.${role}`)) {
      findings.push(finding(entry, entry.root, RULE, `no role assignment grants roles.${role}`));
    }
  }
  return findings;
}

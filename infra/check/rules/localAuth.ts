// Every service we deploy must refuse keys, so a leaked or forgotten key is useless.
// Each type must also be present: a check that passes because the resource vanished
// would prove nothing.
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { deployed } from "../resources";
import { booleanValue, propertyAt } from "../syntax";

const RULE = "keyless";

export const KEYLESS_SETTINGS: readonly { type: string; path: readonly string[]; value: boolean }[] = [
  { type: "Microsoft.Storage/storageAccounts", path: ["properties", "allowSharedKeyAccess"], value: false },
  { type: "Microsoft.SignalRService/webPubSub", path: ["properties", "disableLocalAuth"], value: true },
  { type: "Microsoft.Insights/components", path: ["properties", "DisableLocalAuth"], value: true },
  {
    type: "Microsoft.OperationalInsights/workspaces",
    path: ["properties", "features", "disableLocalAuth"],
    value: true,
  },
  { type: "Microsoft.Devices/IotHubs", path: ["properties", "disableLocalAuth"], value: true },
];

export function localAuthRule(files: readonly BicepFile[]): Finding[] {
  const findings: Finding[] = [];
  for (const { type, path, value } of KEYLESS_SETTINGS) {
    let seen = false;
    for (const file of files) {
      for (const resource of deployed(file.root, type)) {
        seen = true;
        if (booleanValue(propertyAt(resource.body, ...path)) !== value) {
          const where = `${resource.symbol} (${type})`;
          findings.push(
            finding(file, resource.node, RULE, `${where} must set ${path.join(".")}: ${String(value)}`),
          );
        }
      }
    }
    const entry = files[0];
    if (!seen && entry) findings.push(finding(entry, entry.root, RULE, `no ${type} is deployed`));
  }
  return findings;
}

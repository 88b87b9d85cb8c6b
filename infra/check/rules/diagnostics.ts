// Web PubSub and IoT Hub are where a stream fails when it fails (refused connects,
// SlowClient drops, throttled direct methods): their resource logs must reach the
// workspace. The IoT hub may be someone else's (an `existing` reference), so
// diagnostic settings count whatever they are scoped to.
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { deployed, resources } from "../resources";
import { propertyAt, propertyValue } from "../syntax";

const RULE = "diagnostics";
export const DIAGNOSED_TYPES = ["Microsoft.SignalRService/webPubSub", "Microsoft.Devices/IotHubs"] as const;

export function diagnosticsRule(files: readonly BicepFile[]): Finding[] {
  const findings: Finding[] = [];
  const covered = new Set<string>();
  for (const file of files) {
    const typeOf = new Map(resources(file.root).map((r) => [r.symbol, r.type.toLowerCase()]));
    for (const setting of deployed(file.root, "Microsoft.Insights/diagnosticSettings")) {
      const scope = propertyValue(setting.body, "scope");
      const scopeType = scope?.type === "identifier" ? typeOf.get(scope.text) : undefined;
      if (!propertyAt(setting.body, "properties", "workspaceId")) {
        findings.push(
          finding(file, setting.node, RULE, `${setting.symbol}: properties.workspaceId must be set`),
        );
      } else if (scopeType) {
        covered.add(scopeType);
      }
    }
  }
  const entry = files[0];
  for (const type of DIAGNOSED_TYPES) {
    if (entry && !covered.has(type.toLowerCase())) {
      findings.push(
        finding(entry, entry.root, RULE, `no diagnostic setting sends ${type} logs to Log Analytics`),
      );
    }
  }
  return findings;
}

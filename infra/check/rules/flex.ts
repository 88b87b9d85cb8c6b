// Flex Consumption: always-ready instances default to 0, and a cold start during a
// WebSocket handshake (the blocking `connect` event) fails the stream. The HTTP group
// must keep at least one instance warm, whether written as a number or as a
// parameter whose @minValue guarantees it.
import type { Node } from "web-tree-sitter";
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { deployed } from "../resources";
import { arrayItems, call, parameterBound, propertyAt, propertyValue, stringValue } from "../syntax";

const RULE = "flex-consumption";

function guaranteedMinimum(file: BicepFile, node: Node | undefined): number | undefined {
  if (node?.type === "number") return Number(node.text);
  return node?.type === "identifier" ? parameterBound(file.root, node.text, "minValue") : undefined;
}

/** The literal entries of `alwaysReady`: an array, or the array arguments of concat(...). */
function alwaysReadyItems(node: Node | undefined): Node[] {
  const called = call(node);
  if (called?.name === "concat") return called.args.flatMap((a) => arrayItems(a) ?? []);
  return arrayItems(node) ?? [];
}

export function flexRule(files: readonly BicepFile[]): Finding[] {
  const findings: Finding[] = [];
  let apps = 0;
  for (const file of files) {
    for (const site of deployed(file.root, "Microsoft.Web/sites")) {
      const config = propertyAt(site.body, "properties", "functionAppConfig");
      if (!config) continue;
      apps++;
      const report = (message: string): void =>
        void findings.push(finding(file, site.node, RULE, `${site.symbol}: ${message}`));
      if (stringValue(propertyAt(config, "runtime", "name")) !== "node")
        report("functionAppConfig.runtime.name must be 'node'");
      const http = alwaysReadyItems(propertyAt(config, "scaleAndConcurrency", "alwaysReady")).find(
        (item) => stringValue(propertyValue(item, "name")) === "http",
      );
      const minimum = guaranteedMinimum(file, propertyValue(http, "instanceCount"));
      if (minimum === undefined || minimum < 1) {
        report(
          "scaleAndConcurrency.alwaysReady needs { name: 'http', instanceCount: >= 1 } (a number or a @minValue(1) param)",
        );
      }
      if (
        stringValue(propertyAt(config, "deployment", "storage", "authentication", "type")) !==
        "UserAssignedIdentity"
      ) {
        report("deployment storage must authenticate with the user-assigned identity");
      }
    }
  }
  const entry = files[0];
  if (apps === 0 && entry)
    findings.push(finding(entry, entry.root, RULE, "no Flex Consumption function app is deployed"));
  return findings;
}

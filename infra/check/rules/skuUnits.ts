// Unit counts ARM accepts per SKU. Azure's type data does not constrain them (Web PubSub's
// `sku.capacity` and IoT Hub's are plain integers), so the limits are ours, from Microsoft's
// documentation (docs/deploy.md cites it), and this rule checks that for every SKU the entry
// template allows, every unit count it can send is one ARM accepts.
import type { Node } from "web-tree-sitter";
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { declarationBody } from "../resources";
import { literalValue, parameterBound, parameters, propertyAt, stringValue } from "../syntax";

const RULE = "sku-units";

const range = (from: number, to: number, step = 1) =>
  Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);
const STANDARD_WPS = [...range(1, 10), ...range(20, 100, 10)];

/** SKU → the unit counts ARM accepts (sources in docs/deploy.md). */
export const ARM_UNITS: Readonly<
  Record<"webPubSub" | "iotHub", Readonly<Record<string, readonly number[]>>>
> = {
  webPubSub: {
    Free_F1: [1],
    Standard_S1: STANDARD_WPS,
    Premium_P1: STANDARD_WPS,
    Premium_P2: range(100, 1000, 100),
  },
  iotHub: { F1: [1], S1: range(1, 200), S2: range(1, 200), S3: range(1, 10) },
};

export function armAcceptsUnits(service: keyof typeof ARM_UNITS, sku: string, units: number): boolean {
  return ARM_UNITS[service][sku]?.includes(units) ?? false;
}

/** Where main.bicep chooses a service's SKU and units, and the module that receives them. */
export interface SkuUnitsSite {
  readonly service: keyof typeof ARM_UNITS;
  readonly skuParam: string;
  /** The variable holding the unit count for the chosen SKU. */
  readonly capacityVar: string;
  readonly module: string;
}

export const SKU_UNITS_SITES: readonly SkuUnitsSite[] = [
  { service: "webPubSub", skuParam: "webPubSubSku", capacityVar: "webPubSubCapacity", module: "webPubSub" },
  { service: "iotHub", skuParam: "iotHubSku", capacityVar: "iotHubCapacity", module: "iotHub" },
];

/** Every value a parameter admits: its @allowed list, else its @minValue..@maxValue range. */
function admitted(file: BicepFile, name: string): number[] | undefined {
  const param = parameters(file.root).find((p) => p.name === name);
  if (!param) return undefined;
  const allowed = literalValue(param.decorators.find((d) => d.name === "allowed")?.args[0]);
  if (Array.isArray(allowed)) return allowed.filter((v): v is number => typeof v === "number");
  const min = parameterBound(file.root, name, "minValue");
  const max = parameterBound(file.root, name, "maxValue");
  return min !== undefined && max !== undefined ? range(min, max) : undefined;
}

/**
 * The unit counts an expression can take when `skuParam` is `sku`: numbers, parameters, and
 * `skuParam == 'X' ? a : b` chains; undefined for anything else (then the rule says so).
 */
function unitsFor(
  file: BicepFile,
  node: Node | null | undefined,
  skuParam: string,
  sku: string,
): number[] | undefined {
  if (!node) return undefined;
  switch (node.type) {
    case "number":
      return [Number(node.text)];
    case "identifier":
      return admitted(file, node.text);
    case "parenthesized_expression":
      return unitsFor(file, node.namedChildren[0], skuParam, sku);
    case "ternary_expression": {
      const condition = node.childForFieldName("condition");
      const left = condition?.childForFieldName("left");
      const right = condition?.childForFieldName("right");
      const operator = condition?.children.find((c) => !c.isNamed)?.text;
      const compared = stringValue(right ?? undefined);
      if (left?.text !== skuParam || compared === undefined || (operator !== "==" && operator !== "!="))
        return undefined;
      const matches = (compared === sku) === (operator === "==");
      return unitsFor(file, node.childForFieldName(matches ? "consequence" : "alternative"), skuParam, sku);
    }
    default:
      return undefined;
  }
}

export function skuUnitsRule(entry: BicepFile, sites: readonly SkuUnitsSite[] = SKU_UNITS_SITES): Finding[] {
  const findings: Finding[] = [];
  for (const site of sites) {
    const report = (node: Node, message: string) =>
      void findings.push(finding(entry, node, RULE, `${site.service}: ${message}`));
    const skuParam = parameters(entry.root).find((p) => p.name === site.skuParam);
    const skus = literalValue(skuParam?.decorators.find((d) => d.name === "allowed")?.args[0]);
    if (!skuParam || !Array.isArray(skus)) {
      report(entry.root, `param ${site.skuParam} with an @allowed list of SKUs is missing`);
      continue;
    }
    const variable = entry.root.namedChildren.find(
      (c) => c.type === "variable_declaration" && c.namedChildren[0]?.text === site.capacityVar,
    );
    const module = entry.root.namedChildren.find(
      (c) => c.type === "module_declaration" && c.namedChildren[0]?.text === site.module,
    );
    const passed = propertyAt(module && declarationBody(module), "params", "units");
    if (!variable || passed?.text !== site.capacityVar) {
      report(variable ?? module ?? entry.root, `module ${site.module} must get units: ${site.capacityVar}`);
      continue;
    }
    for (const sku of skus) {
      if (typeof sku !== "string") continue;
      const units = unitsFor(entry, variable.lastNamedChild, site.skuParam, sku);
      if (!units) {
        report(variable, `cannot tell which units ${site.capacityVar} takes for ${sku}`);
        continue;
      }
      const refused = units.filter((u) => !armAcceptsUnits(site.service, sku, u));
      if (refused.length > 0)
        report(
          variable,
          `${sku} with ${refused.slice(0, 5).join(", ")}${refused.length > 5 ? " ..." : ""} units: ARM refuses it`,
        );
    }
  }
  return findings;
}

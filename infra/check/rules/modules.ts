// What the Bicep compiler would say about module wiring, checked without it: every
// parameter a module requires is passed, nothing it does not declare is passed, and
// every `<module>.outputs.<name>` it is read through exists.
import { dirname, join } from "node:path/posix";
import type { Node } from "web-tree-sitter";
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { declarationBody } from "../resources";
import {
  outputs,
  parameterDefault,
  parameters,
  propertyKey,
  propertyValue,
  properties,
  stringValue,
  walk,
} from "../syntax";

const RULE = "modules";

interface ModuleUse {
  readonly node: Node;
  readonly symbol: string;
  readonly target: BicepFile;
}

function moduleUses(
  file: BicepFile,
  byPath: ReadonlyMap<string, BicepFile>,
  findings: Finding[],
): ModuleUse[] {
  const uses: ModuleUse[] = [];
  for (const node of file.root.namedChildren.filter((c) => c.type === "module_declaration")) {
    const source = stringValue(node.namedChildren[1]);
    const symbol = node.namedChildren[0]?.text ?? "";
    // Registry modules (br:, ts:) are not ours to read.
    if (source === undefined || source.includes(":")) continue;
    const target = byPath.get(join(dirname(file.path), source));
    if (!target) {
      findings.push(
        finding(file, node, RULE, `module ${symbol}: ${source} is not among the checked templates`),
      );
      continue;
    }
    uses.push({ node, symbol, target });
  }
  return uses;
}

function checkParams(file: BicepFile, use: ModuleUse): Finding[] {
  const passedNode = propertyValue(declarationBody(use.node), "params");
  const passed = new Set(passedNode ? properties(passedNode).map(propertyKey) : []);
  const declared = parameters(use.target.root);
  const names = new Set(declared.map((p) => p.name));
  const report = (message: string): Finding =>
    finding(file, use.node, RULE, `module ${use.symbol}: ${message}`);
  return [
    ...[...passed]
      .filter((p) => p !== undefined && !names.has(p))
      .map((p) => report(`passes ${p}, which ${use.target.path} does not declare`)),
    ...declared
      .filter((p) => parameterDefault(p.node) === undefined && !passed.has(p.name))
      .map((p) => report(`does not pass required param ${p.name}`)),
  ];
}

function checkOutputs(file: BicepFile, uses: readonly ModuleUse[]): Finding[] {
  const outputsOf = new Map(uses.map((u) => [u.symbol, new Set(outputs(u.target.root).map((o) => o.name))]));
  const findings: Finding[] = [];
  for (const node of walk(file.root)) {
    // <module>.outputs.<name>: member_expression(member_expression(identifier, outputs), name)
    if (node.type !== "member_expression") continue;
    const inner = node.childForFieldName("object");
    const symbol = inner?.type === "member_expression" ? inner.childForFieldName("object")?.text : undefined;
    if (symbol === undefined || inner?.childForFieldName("property")?.text !== "outputs") continue;
    const known = outputsOf.get(symbol);
    const name = node.childForFieldName("property")?.text ?? "";
    if (known && !known.has(name)) {
      findings.push(finding(file, node, RULE, `module ${symbol} has no output ${name}`));
    }
  }
  return findings;
}

export function modulesRule(files: readonly BicepFile[]): Finding[] {
  const byPath = new Map(files.map((f) => [f.path, f]));
  const findings: Finding[] = [];
  for (const file of files) {
    const uses = moduleUses(file, byPath, findings);
    for (const use of uses) findings.push(...checkParams(file, use));
    findings.push(...checkOutputs(file, uses));
  }
  return findings;
}

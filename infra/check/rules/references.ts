// Every name an expression uses must be declared: a typo such as `storag.id` would
// otherwise surface only when ARM rejects the deployment. Scoping is deliberately
// loose (a loop or lambda variable counts file-wide), so this finds misspellings, not
// every scoping mistake the Bicep compiler would.
import type { Node } from "web-tree-sitter";
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { walk } from "../syntax";

const RULE = "references";
const DECLARATIONS = new Set([
  "parameter_declaration",
  "variable_declaration",
  "resource_declaration",
  "module_declaration",
  "user_defined_function",
  "parameter",
]);
/** Bicep's function namespaces. */
const NAMESPACES = new Set(["az", "sys"]);

const isFirstNamedChild = (node: Node): boolean => node.parent?.namedChildren[0]?.equals(node) ?? false;

/** Names a declaration introduces: declared symbols, loop variables, lambda parameters. */
function declaredNames(root: Node): Set<string> {
  const names = new Set<string>(NAMESPACES);
  for (const node of walk(root)) {
    const parent = node.parent;
    if (node.type === "loop_variable" || node.type === "loop_enumerator") names.add(node.text);
    if (node.type !== "identifier" || !parent) continue;
    if (DECLARATIONS.has(parent.type) && isFirstNamedChild(node)) names.add(node.text);
    // `for x in xs:` (a single variable is a bare identifier) and `x => ...` / `(x, i) => ...`
    if (parent.type === "for_statement" && isFirstNamedChild(node)) names.add(node.text);
    const lambda = parent.type === "parenthesized_expression" ? parent.parent : parent;
    const params = lambda?.type === "lambda_expression" ? lambda.namedChildren[0] : undefined;
    if (params && (params.equals(node) || params.equals(parent))) names.add(node.text);
  }
  return names;
}

/** Identifiers that name something rather than use it. */
function isNamingPosition(node: Node): boolean {
  const parent = node.parent;
  if (!parent) return true;
  if (!isFirstNamedChild(node)) return parent.type === "resource_expression"; // parent::child
  return (
    ["object_property", "call_expression", "output_declaration"].includes(parent.type) ||
    DECLARATIONS.has(parent.type)
  );
}

export function referencesRule(files: readonly BicepFile[]): Finding[] {
  return files.flatMap((file) => {
    const declared = declaredNames(file.root);
    return [...walk(file.root)]
      .filter((n) => n.type === "identifier" && !isNamingPosition(n) && !declared.has(n.text))
      .map((n) => finding(file, n, RULE, `${n.text} is not declared in this file`));
  });
}

import type { Node } from "web-tree-sitter";
import { stringValue, walk } from "./syntax";

export interface Resource {
  readonly node: Node;
  readonly symbol: string;
  /** Full resource type without api version, e.g. "Microsoft.Web/sites/config". */
  readonly type: string;
  /** `existing` references describe someone else's resource, not what we deploy. */
  readonly existing: boolean;
  /** The object literal of the declaration, through `if (...)` and `[for ...: ...]`. */
  readonly body: Node | undefined;
}

function bodyOf(node: Node | undefined): Node | undefined {
  if (!node) return undefined;
  if (node.type === "object") return node;
  if (node.type === "if_statement") return bodyOf(node.lastNamedChild ?? undefined);
  if (node.type === "for_statement")
    return bodyOf(node.childForFieldName("body") ?? node.lastNamedChild ?? undefined);
  return undefined;
}

/** The object literal of a resource or module declaration, through `if` and `for`. */
export function declarationBody(declaration: Node): Node | undefined {
  return bodyOf(declaration.lastNamedChild ?? undefined);
}

/** Nested declarations (`resource x 'config' = ...` inside a parent) get the parent's type as prefix. */
function fullType(declaration: Node, declared: string): string {
  if (declared.includes("/")) return declared;
  for (let up = declaration.parent; up; up = up.parent) {
    if (up.type !== "resource_declaration") continue;
    const parentType = stringValue(up.namedChildren[1]);
    if (parentType !== undefined) return `${fullType(up, parentType.split("@")[0] ?? "")}/${declared}`;
  }
  return declared;
}

export function resources(root: Node): Resource[] {
  const found: Resource[] = [];
  for (const node of walk(root)) {
    if (node.type !== "resource_declaration") continue;
    const declared = stringValue(node.namedChildren[1])?.split("@")[0];
    if (declared === undefined) continue;
    found.push({
      node,
      symbol: node.namedChildren[0]?.text ?? "",
      type: fullType(node, declared),
      existing: node.children.some((c) => c.type === "existing"),
      body: declarationBody(node),
    });
  }
  return found;
}

/** Resources of one type (case-insensitive, as ARM compares types) that this template deploys. */
export function deployed(root: Node, type: string): Resource[] {
  const wanted = type.toLowerCase();
  return resources(root).filter((r) => !r.existing && r.type.toLowerCase() === wanted);
}

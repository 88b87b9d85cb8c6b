// Small readers over the tree-sitter-bicep syntax tree. They answer "what does this
// declaration literally say", and return undefined whenever the answer depends on
// evaluation (parameters, functions), so rules can tell "wrong" from "unknowable".
import type { Node } from "web-tree-sitter";

export function* walk(node: Node): Generator<Node> {
  yield node;
  for (const child of node.namedChildren) yield* walk(child);
}

/** The text of a string literal without interpolation, else undefined. */
export function stringValue(node: Node | undefined): string | undefined {
  if (node?.type !== "string") return undefined;
  const parts = node.namedChildren;
  if (parts.some((p) => p.type !== "string_content" && p.type !== "escape_sequence")) return undefined;
  // The grammar leaves some escapes (`\$`) out of the tree; text it does not cover is unknowable here.
  const covered = node.children.reduce((length, c) => length + c.text.length, 0);
  if (covered !== node.text.length) return undefined;
  return parts.map((p) => (p.type === "escape_sequence" ? unescape(p.text) : p.text)).join("");
}

function unescape(seq: string): string {
  const simple: Record<string, string> = {
    "\\'": "'",
    "\\\\": "\\",
    "\\n": "\n",
    "\\r": "\r",
    "\\t": "\t",
  };
  return simple[seq] ?? seq;
}

/** true/false for a boolean literal, else undefined. */
export function booleanValue(node: Node | undefined): boolean | undefined {
  if (node?.type !== "boolean") return undefined;
  return node.text === "true";
}

/** The key of an object_property: an identifier or a plain string. */
export function propertyKey(property: Node): string | undefined {
  const key = property.namedChildren[0];
  if (!key) return undefined;
  return key.type === "identifier" ? key.text : stringValue(key);
}

/** The value of `key` in an object literal (Bicep keys are case-insensitive). */
export function propertyValue(object: Node | undefined, key: string): Node | undefined {
  if (object?.type !== "object") return undefined;
  const wanted = key.toLowerCase();
  for (const property of object.namedChildren) {
    if (property.type !== "object_property") continue;
    if (propertyKey(property)?.toLowerCase() === wanted) return property.namedChildren[1];
  }
  return undefined;
}

/** Follows nested object literals: propertyAt(body, "properties", "features", "x"). */
export function propertyAt(object: Node | undefined, ...path: string[]): Node | undefined {
  return path.reduce<Node | undefined>((node, key) => propertyValue(node, key), object);
}

export function properties(object: Node): Node[] {
  return object.namedChildren.filter((c) => c.type === "object_property");
}

export function arrayItems(node: Node | undefined): Node[] | undefined {
  if (node?.type !== "array") return undefined;
  return node.namedChildren.filter((c) => c.type !== "comment");
}

/** `f(...)` or `ns.f(...)` / `x.f(...)`: the called name and its arguments. */
export function call(node: Node | undefined): { name: string; args: Node[] } | undefined {
  if (node?.type !== "call_expression") return undefined;
  const fn = node.childForFieldName("function") ?? node.namedChildren[0];
  const args = node.childForFieldName("arguments") ?? node.namedChildren.find((c) => c.type === "arguments");
  if (!fn || !args) return undefined;
  const name = fn.type === "member_expression" ? fn.childForFieldName("property")?.text : fn.text;
  if (name === undefined) return undefined;
  return { name, args: args.namedChildren.filter((c) => c.type !== "comment") };
}

export interface Decorator {
  readonly name: string;
  readonly args: readonly Node[];
}

export interface Decorated {
  readonly node: Node;
  readonly name: string;
  readonly decorators: readonly Decorator[];
}

/** The decorators written directly above a declaration. */
function decoratorsOf(declaration: Node): Decorator[] {
  let previous = declaration.previousNamedSibling;
  while (previous?.type === "comment") previous = previous.previousNamedSibling;
  if (previous?.type !== "decorators") return [];
  return previous.namedChildren.flatMap((d) => {
    const expr = d.namedChildren[0];
    const called = call(expr);
    if (called) return [called];
    return expr?.type === "identifier" ? [{ name: expr.text, args: [] }] : [];
  });
}

function declarations(root: Node, type: string): Decorated[] {
  return root.namedChildren
    .filter((c) => c.type === type)
    .map((node) => ({ node, name: node.namedChildren[0]?.text ?? "", decorators: decoratorsOf(node) }));
}

export const parameters = (root: Node): Decorated[] => declarations(root, "parameter_declaration");

export interface Output extends Decorated {
  readonly value: Node | undefined;
}

export function outputs(root: Node): Output[] {
  return declarations(root, "output_declaration").map((d) => ({
    ...d,
    value: d.node.lastNamedChild ?? undefined,
  }));
}

/** A parameter's default value, if it has one. */
export function parameterDefault(param: Node): Node | undefined {
  const eq = param.children.find((c) => c.type === "=");
  return eq?.nextNamedSibling ?? undefined;
}

/** The number given to a parameter's decorator, e.g. 1 for `@minValue(1) param x int`. */
export function parameterBound(root: Node, name: string, decorator: string): number | undefined {
  const param = parameters(root).find((p) => p.name === name);
  const arg = param?.decorators.find((d) => d.name === decorator)?.args[0];
  return arg?.type === "number" ? Number(arg.text) : undefined;
}

export type Literal = string | number | boolean | null | Literal[] | { [key: string]: Literal };

/** The JSON value of a literal expression (no references, no interpolation), else undefined. */
export function literalValue(node: Node | undefined): Literal | undefined {
  switch (node?.type) {
    case "string":
      return stringValue(node);
    case "number":
      return Number(node.text);
    case "boolean":
      return booleanValue(node);
    case "null":
      return null;
    case "array": {
      const items = (arrayItems(node) ?? []).map(literalValue);
      return items.every((i) => i !== undefined) ? items : undefined;
    }
    case "object": {
      const entries = properties(node).map(
        (p) => [propertyKey(p), literalValue(p.namedChildren[1])] as const,
      );
      if (entries.some(([k, v]) => k === undefined || v === undefined)) return undefined;
      return Object.fromEntries(entries) as { [key: string]: Literal };
    }
    default:
      return undefined;
  }
}

import type { Node } from "web-tree-sitter";

/** One broken rule, located in a Bicep file (1-based line and column). */
export interface Finding {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly rule: string;
  readonly message: string;
}

export function finding(file: { path: string }, node: Node, rule: string, message: string): Finding {
  return {
    file: file.path,
    line: node.startPosition.row + 1,
    column: node.startPosition.column + 1,
    rule,
    message,
  };
}

export function formatFinding(f: Finding): string {
  return `${f.file}:${f.line}:${f.column} [${f.rule}] ${f.message}`;
}

// Loads the Bicep grammar once per process. web-tree-sitter ships a CommonJS build
// (web-tree-sitter.cjs, picked by the package's "require" export), which is what
// jest's CommonJS runtime and `node dist/...` both need.
import { readFileSync } from "node:fs";
import { Language, Parser, type Node } from "web-tree-sitter";
import { finding, type Finding } from "./finding";

export interface BicepFile {
  /** Path as shown in findings (relative to the repository root). */
  readonly path: string;
  readonly source: string;
  readonly root: Node;
}

let parserPromise: Promise<Parser> | undefined;

async function loadParser(): Promise<Parser> {
  await Parser.init();
  // Bytes, not a path: given a path, Language.load reaches for fs through a dynamic
  // import(), which jest's CommonJS runtime refuses without --experimental-vm-modules.
  const wasm = readFileSync(require.resolve("tree-sitter-bicep/tree-sitter-bicep.wasm"));
  const grammar = await Language.load(wasm);
  return new Parser().setLanguage(grammar);
}

export async function parseBicep(path: string, source: string): Promise<BicepFile> {
  parserPromise ??= loadParser();
  const tree = (await parserPromise).parse(source);
  if (!tree) throw new Error(`${path}: the Bicep parser returned no tree`);
  return { path, source, root: tree.rootNode };
}

/** ERROR and MISSING nodes, each with the file, line and column where it starts. */
export function syntaxErrors(file: BicepFile): Finding[] {
  const found: Finding[] = [];
  const visit = (node: Node): void => {
    if (node.isMissing) {
      found.push(finding(file, node, "syntax", `missing ${JSON.stringify(node.type)}`));
      return;
    }
    if (node.isError) {
      const text = node.text.split("\n")[0]?.slice(0, 40) ?? "";
      found.push(finding(file, node, "syntax", `unexpected ${JSON.stringify(text)}`));
      return;
    }
    // hasError is false for subtrees without ERROR/MISSING nodes: skip them cheaply.
    for (const child of node.children) if (child.hasError || child.isMissing) visit(child);
  };
  visit(file.root);
  return found;
}

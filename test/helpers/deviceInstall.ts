/**
 * Reading what a device owner copies: the shipped systemd unit and the command lines of
 * docs/device-install.md, as systemd and a POSIX shell would split them (for the subset they use:
 * quotes, backslash continuations, comments, `&&`/`||`/`;`/`|` between commands).
 */
import { readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";

export const REPO = resolve(__dirname, "..", "..");
export const UNIT_PATH = join(REPO, "client", "systemd", "devicestream-agent.service");
export const DOC_PATH = join(REPO, "docs", "device-install.md");

/** `Key=value` lines of a unit file by section; a key may repeat, in order. */
export type Unit = Record<string, { key: string; value: string }[]>;

export function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section = "";
  for (const raw of text.replace(/\\\n/g, " ").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      unit[section] ??= [];
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`not a unit line: ${line}`);
    (unit[section] ??= []).push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() });
  }
  return unit;
}

export function unitValues(unit: Unit, section: string, key: string): string[] {
  return (unit[section] ?? []).filter((e) => e.key === key).map((e) => e.value);
}

export function readUnit(): Unit {
  return parseUnit(readFileSync(UNIT_PATH, "utf8"));
}

const OPERATORS = new Set(["&&", "||", ";", "|", "&"]);

/** Splits one (continuation-joined) line into words; `#` at a word's start ends the line. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "#" && word === undefined) {
      break;
    } else if ("&|;".includes(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      const two = line.slice(i, i + 2);
      if (two === "&&" || two === "||") {
        words.push(two);
        i++;
      } else words.push(c);
    } else {
      word = (word ?? "") + c;
    }
  }
  if (quote) throw new Error(`unterminated quote in: ${line}`);
  if (word !== undefined) words.push(word);
  return words;
}

/** The simple commands of a line (split at shell operators). */
export function commandsOf(line: string): string[][] {
  const commands: string[][] = [[]];
  for (const word of splitWords(line)) {
    if (OPERATORS.has(word)) commands.push([]);
    else commands[commands.length - 1]!.push(word);
  }
  return commands.filter((c) => c.length > 0);
}

/** The arguments after the program of a `devicestream` invocation (behind `sudo` or `VAR=x`), if it is one. */
export function devicestreamArgs(command: readonly string[]): string[] | undefined {
  let i = 0;
  while (i < command.length && (command[i] === "sudo" || /^[A-Za-z_][A-Za-z0-9_]*=/.test(command[i]!))) i++;
  const program = command[i];
  return program !== undefined && basename(program) === "devicestream" ? command.slice(i + 1) : undefined;
}

export interface CodeBlock {
  lang: string;
  /** Lines with backslash continuations joined. */
  lines: string[];
  /** 1-based line of the opening fence, for messages. */
  at: number;
}

export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  let open: { lang: string; body: string[]; at: number } | undefined;
  markdown.split("\n").forEach((line, index) => {
    const fence = /^```(\S*)\s*$/.exec(line);
    if (fence && !open) open = { lang: fence[1]!, body: [], at: index + 1 };
    else if (fence && open) {
      blocks.push({
        lang: open.lang,
        lines: open.body.join("\n").replace(/\\\n/g, " ").split("\n"),
        at: open.at,
      });
      open = undefined;
    } else open?.body.push(line);
  });
  return blocks;
}

/** Inline code spans of the page's prose (outside fenced blocks). */
export function inlineCode(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "");
  return [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
}

/**
 * JSON from callers, bounded before it is parsed or validated: schema validation and
 * `JSON.stringify` recurse once per level, so `data` nested a few thousand levels deep (4 KB of
 * `[`) overflowed the stack and gave a 500. One linear scan of the text, without recursion,
 * refuses too deep or too wide a document with a 400 that names the field, before anything else
 * looks at it. Size is bounded by the route's body limit (./body.ts).
 */
import { Errors } from "../errors";

export interface JsonBounds {
  /** Containers nested inside each other; the outermost object or array is level 1. */
  maxDepth: number;
  /** Members of one object, or elements of one array. */
  maxMembers: number;
}

/**
 * Documented with the API (README.md, REST API). 32 levels and 4,096 members hold any request `data` a
 * device protocol needs, and keep the work per request linear in the body size.
 */
export const JSON_BOUNDS: JsonBounds = { maxDepth: 32, maxMembers: 4096 };

/** Parses `text` after `checkJsonBounds`; 400 `InvalidJson` for text that is not JSON. */
export function parseJson(text: string, bounds: JsonBounds = JSON_BOUNDS): unknown {
  checkJsonBounds(text, bounds);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw Errors.badRequest("InvalidJson", "The body is not valid JSON.");
  }
}

/**
 * Throws a 400 naming the top-level field under which the document is too deep or too wide.
 * It does not validate the syntax (JSON.parse does, after it); malformed text only ends the scan.
 */
export function checkJsonBounds(text: string, bounds: JsonBounds = JSON_BOUNDS): void {
  /** Per open container: whether it is an object, and its members so far. */
  const open: { object: boolean; members: number }[] = [];
  let topKey: string | undefined;
  let expectingKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      countMember(open, bounds, topKey, expectingKey);
      if (expectingKey && open.length === 1) topKey = decodeKey(text.slice(i, end + 1));
      expectingKey = false;
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      countMember(open, bounds, topKey, false);
      if (open.length >= bounds.maxDepth) {
        throw tooComplex(topKey, `nested deeper than ${bounds.maxDepth} levels`);
      }
      open.push({ object: c === 0x7b, members: 0 });
      expectingKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
      if (open.length === 0) topKey = undefined;
      expectingKey = false;
    } else if (c === 0x2c /* , */) {
      expectingKey = open.at(-1)?.object ?? false;
    } else if (c === 0x3a /* : */) {
      expectingKey = false;
    } else if (c > 0x20 && !expectingKey) {
      // The first character of a number or literal; the rest of it adds no member.
      countMember(open, bounds, topKey, false);
      while (i + 1 < text.length && isLiteralChar(text.charCodeAt(i + 1))) i++;
    }
  }
}

/** Counts a member of the innermost container: a key of an object, or a value of an array. */
function countMember(
  open: { object: boolean; members: number }[],
  bounds: JsonBounds,
  topKey: string | undefined,
  isKey: boolean,
): void {
  const inner = open.at(-1);
  if (inner === undefined || inner.object !== isKey) return;
  if (++inner.members > bounds.maxMembers) {
    const what = inner.object ? "an object has more than" : "an array has more than";
    throw tooComplex(topKey, `${what} ${bounds.maxMembers} members`);
  }
}

/** Characters that continue a number or a literal (true, false, null, or junk JSON.parse refuses). */
function isLiteralChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) || // 0-9
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x61 && c <= 0x7a) || // a-z
    c === 0x2b || // +
    c === 0x2d || // -
    c === 0x2e // .
  );
}

/** Index of the closing quote of the string that opens at `start` (or the end of the text). */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22) return i;
  }
  return text.length - 1;
}

const MAX_KEY_SHOWN = 64;

function decodeKey(quoted: string): string {
  try {
    const key = JSON.parse(quoted) as string;
    return key.length > MAX_KEY_SHOWN ? `${key.slice(0, MAX_KEY_SHOWN)}…` : key;
  } catch {
    return "(a malformed key)";
  }
}

function tooComplex(field: string | undefined, problem: string) {
  return Errors.invalidField(field ?? "(body)", problem);
}

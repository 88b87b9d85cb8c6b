/**
 * Glob patterns for device IDs and stream names: `*` matches any run of characters (also empty),
 * `?` exactly one character, `\x` the character x literally (IoT Hub IDs may themselves contain
 * `*` and `?`). Matching is case-sensitive, like IoT Hub IDs. A hand-written matcher rather than a
 * RegExp keeps the worst case at O(pattern × value) whatever an operator writes.
 */

export class GlobSyntaxError extends Error {
  override readonly name = "GlobSyntaxError";
}

type Token = { kind: "star" } | { kind: "one" } | { kind: "char"; ch: string; escaped: boolean };

export interface Glob {
  readonly pattern: string;
  matches(value: string): boolean;
}

/**
 * `device` or `device/module`. A pattern without `/` matches device-level streams only, one with
 * `/` module streams only (`*` never reaches across the slash, which IDs cannot contain), so
 * granting a device does not silently grant its modules: full access is `["*", "*\/*"]`.
 */
export interface DevicePattern {
  readonly pattern: string;
  matches(target: { deviceId: string; moduleId?: string | undefined }): boolean;
}

function tokenize(pattern: string): Token[] {
  const chars = Array.from(pattern);
  const tokens: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string;
    if (ch === "\\") {
      const next = chars[++i];
      if (next === undefined) throw new GlobSyntaxError(`pattern '${pattern}' ends with a lone '\\'`);
      tokens.push({ kind: "char", ch: next, escaped: true });
    } else if (ch === "*") {
      // Consecutive stars mean the same as one; collapsing them keeps matching linear-ish.
      if (tokens.at(-1)?.kind !== "star") tokens.push({ kind: "star" });
    } else if (ch === "?") {
      tokens.push({ kind: "one" });
    } else {
      tokens.push({ kind: "char", ch, escaped: false });
    }
  }
  return tokens;
}

function matchTokens(tokens: readonly Token[], value: string): boolean {
  const chars = Array.from(value);
  let t = 0;
  let v = 0;
  let starT = -1;
  let starV = 0;
  while (v < chars.length) {
    const token = tokens[t];
    if (token && (token.kind === "one" || (token.kind === "char" && token.ch === chars[v]))) {
      t++;
      v++;
    } else if (token?.kind === "star") {
      starT = t++;
      starV = v;
    } else if (starT >= 0) {
      // Let the last star swallow one more character and retry from there.
      t = starT + 1;
      v = ++starV;
    } else {
      return false;
    }
  }
  while (tokens[t]?.kind === "star") t++;
  return t === tokens.length;
}

function globOf(pattern: string, tokens: readonly Token[]): Glob {
  return { pattern, matches: (value) => matchTokens(tokens, value) };
}

export function compileGlob(pattern: string): Glob {
  if (pattern.length === 0) throw new GlobSyntaxError("pattern must not be empty");
  return globOf(pattern, tokenize(pattern));
}

export function compileDevicePattern(pattern: string): DevicePattern {
  if (pattern.length === 0) throw new GlobSyntaxError("pattern must not be empty");
  const tokens = tokenize(pattern);
  const slashes = tokens.flatMap((t, i) => (t.kind === "char" && t.ch === "/" && !t.escaped ? [i] : []));
  if (slashes.length > 1) {
    throw new GlobSyntaxError(
      `pattern '${pattern}' has more than one '/' (expected device or device/module)`,
    );
  }
  const slash = slashes[0];
  if (slash === undefined) {
    const device = globOf(pattern, tokens);
    return { pattern, matches: (t) => t.moduleId === undefined && device.matches(t.deviceId) };
  }
  const deviceTokens = tokens.slice(0, slash);
  const moduleTokens = tokens.slice(slash + 1);
  if (deviceTokens.length === 0 || moduleTokens.length === 0) {
    throw new GlobSyntaxError(`pattern '${pattern}' needs a device and a module part around '/'`);
  }
  return {
    pattern,
    matches: (t) =>
      t.moduleId !== undefined &&
      matchTokens(deviceTokens, t.deviceId) &&
      matchTokens(moduleTokens, t.moduleId),
  };
}

import type { HttpRouteDef } from "../shared/http/routeTypes";

/**
 * Functions route templates (ASP.NET Core syntax) matched the way the Functions host matches them:
 * literal segments case-insensitively, `{name}`, a trailing optional `{name?}`, a trailing
 * catch-all `{*name}`, and the common inline constraints. Only whole-segment parameters are
 * supported; complex segments such as `{a}.{b}` are rejected at startup rather than misrouted.
 */

type Constraint = (value: string) => boolean;

const CONSTRAINTS = new Map<string, Constraint>([
  ["int", (v) => /^-?\d{1,10}$/.test(v) && Number(v) >= -(2 ** 31) && Number(v) <= 2 ** 31 - 1],
  ["long", (v) => /^-?\d{1,19}$/.test(v)],
  ["bool", (v) => /^(true|false)$/i.test(v)],
  ["guid", (v) => /^[{(]?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}[)}]?$/i.test(v)],
  ["alpha", (v) => /^[a-z]+$/i.test(v)],
]);

type Segment =
  | { kind: "literal"; text: string }
  | { kind: "param"; name: string; optional: boolean; constraintText: string; constraints: Constraint[] }
  | { kind: "catchAll"; name: string };

export interface CompiledRoute<T> {
  readonly def: T;
  readonly template: string;
  readonly segments: readonly Segment[];
  /** Smaller sorts first: ASP.NET's inbound precedence, one digit per segment. */
  readonly precedence: readonly number[];
}

export type RouteMatch<T> = { kind: "found"; def: T; params: Record<string, string> } | { kind: "notFound" };

export class RouteTemplateError extends Error {
  override readonly name = "RouteTemplateError";
}

function parseSegment(raw: string, template: string, isLast: boolean): Segment {
  const where = `route template '${template}'`;
  if (!raw.includes("{") && !raw.includes("}")) return { kind: "literal", text: raw.toLowerCase() };
  const m = /^\{(\*{1,2})?([A-Za-z_][A-Za-z0-9_]*)((?::[a-z]+)*)(\?)?\}$/.exec(raw);
  if (!m)
    throw new RouteTemplateError(`${where}: unsupported segment '${raw}' (only whole-segment parameters)`);
  const [, star, name = "", constraintText = "", optional] = m;
  if (star) {
    if (!isLast) throw new RouteTemplateError(`${where}: catch-all '${raw}' must be the last segment`);
    return { kind: "catchAll", name };
  }
  if (optional && !isLast)
    throw new RouteTemplateError(`${where}: optional '${raw}' must be the last segment`);
  const constraints = constraintText
    .split(":")
    .filter(Boolean)
    .map((c) => {
      const fn = CONSTRAINTS.get(c);
      if (!fn) throw new RouteTemplateError(`${where}: unsupported constraint '${c}' in '${raw}'`);
      return fn;
    });
  return { kind: "param", name, optional: Boolean(optional), constraintText, constraints };
}

function precedenceOf(segment: Segment): number {
  if (segment.kind === "literal") return 1;
  if (segment.kind === "catchAll") return 5;
  if (segment.optional) return 4;
  return segment.constraints.length > 0 ? 2 : 3;
}

export function compileRoute<T>(template: string, def: T): CompiledRoute<T> {
  const parts = splitPath(template);
  const segments = parts.map((raw, i) => parseSegment(raw, template, i === parts.length - 1));
  const names = segments.filter((s) => s.kind !== "literal").map((s) => s.name.toLowerCase());
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate)
    throw new RouteTemplateError(`route template '${template}': parameter '${duplicate}' repeats`);
  return { def, template, segments, precedence: segments.map(precedenceOf) };
}

/** Splits on '/' ignoring leading and trailing slashes, as ASP.NET does for templates and paths. */
function splitPath(path: string): string[] {
  const trimmed = path.replace(/^\/+/, "").replace(/\/$/, "");
  return trimmed === "" ? [] : trimmed.split("/");
}

/** RFC 3986 §5.2.4 on split segments: `.` goes, `..` takes the segment before it (never past the root). */
function removeDotSegments(parts: readonly string[]): string[] {
  const out: string[] = [];
  for (const part of parts) {
    if (part === "..") out.pop();
    else if (part !== ".") out.push(part);
  }
  return out;
}

/**
 * Decodes one path segment. Invalid escapes stay as they are (as in ASP.NET) instead of failing the
 * request: a device ID such as `Dev%1` sent unencoded still reaches the handler.
 */
export function decodeSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw.replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}

function comparePrecedence(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function matchSegments(
  segments: readonly Segment[],
  parts: readonly string[],
  decode: (raw: string) => string,
): Record<string, string> | null {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const part = parts[i];
    if (segment.kind === "catchAll") {
      const rest = parts.slice(i).map(decode).join("/");
      if (rest !== "") params[segment.name] = rest;
      return params;
    }
    if (part === undefined || part === "") {
      if (segment.kind === "param" && segment.optional) return params;
      return null;
    }
    if (segment.kind === "literal") {
      if (decode(part).toLowerCase() !== segment.text) return null;
      continue;
    }
    const value = decode(part);
    if (!segment.constraints.every((ok) => ok(value))) return null;
    params[segment.name] = value;
  }
  return parts.length === segments.length ? params : null;
}

interface MethodRoute {
  name: string;
  route: string;
  methods: readonly string[];
}

/**
 * The routing decision for one request: the most specific template that matches the path and
 * accepts the method wins. A path that matches only under other methods (HEAD on a GET route
 * included) is not found, as on the Functions host (azure-functions-host #10098, #11625).
 */
export class RouteMatcher<T extends MethodRoute = HttpRouteDef> {
  private readonly routes: CompiledRoute<T>[];
  private readonly prefix: string[];

  constructor(defs: readonly T[], routePrefix: string) {
    this.prefix = splitPath(routePrefix).map((p) => p.toLowerCase());
    const compiled = defs.map((def) => compileRoute(def.route, def));
    assertUnambiguous(compiled);
    this.routes = compiled.sort((a, b) => comparePrecedence(a.precedence, b.precedence));
  }

  /**
   * `.` and `..` segments are removed first, after decoding as Kestrel does (dotnet/aspnetcore,
   * Kestrel's PathNormalizer.cs). `decodeBeforeRoute`: percent-decode the whole path before that,
   * as the real Functions host has been reported to do (azure-functions-host #3998, #5619, #9290;
   * Azure-Functions #2506): `%2F` then separates segments, `%2E%2E` climbs, and segments are not
   * decoded a second time. Otherwise each segment is decoded after the split, as ASP.NET routing does.
   */
  match(method: string, pathname: string, options: { decodeBeforeRoute?: boolean } = {}): RouteMatch<T> {
    const decode = options.decodeBeforeRoute ? (raw: string) => raw : decodeSegment;
    const parts = removeDotSegments(
      splitPath(options.decodeBeforeRoute ? decodeSegment(pathname) : pathname),
    );
    for (let i = 0; i < this.prefix.length; i++) {
      if (decode(parts[i] ?? "").toLowerCase() !== this.prefix[i]) return { kind: "notFound" };
    }
    const rest = parts.slice(this.prefix.length);
    const upper = method.toUpperCase();
    for (const route of this.routes) {
      if (!route.def.methods.some((m) => m.toUpperCase() === upper)) continue;
      const params = matchSegments(route.segments, rest, decode);
      if (params) return { kind: "found", def: route.def, params };
    }
    return { kind: "notFound" };
  }
}

/** What makes two templates match the same paths: parameter names do not count, constraints do. */
function shapeOf(segment: Segment): string {
  if (segment.kind === "literal") return segment.text;
  if (segment.kind === "catchAll") return "{*}";
  return `{${segment.optional ? "?" : ""}${segment.constraintText}}`;
}

/** Two functions on the same template and method would make routing depend on registration order. */
function assertUnambiguous<T extends MethodRoute>(routes: readonly CompiledRoute<T>[]): void {
  const seen = new Map<string, string>();
  for (const { def, segments, template } of routes) {
    const shape = segments.map(shapeOf).join("/");
    for (const m of def.methods) {
      const key = `${m.toUpperCase()} ${shape}`;
      const other = seen.get(key);
      if (other) {
        throw new RouteTemplateError(
          `functions '${other}' and '${def.name}' both serve ${m.toUpperCase()} ${template}`,
        );
      }
      seen.set(key, def.name);
    }
  }
}

/** Reading and validating what callers send; every problem becomes a named 4xx. */
import type { HttpRequest } from "@azure/functions";
import type { z } from "zod";
import { Errors } from "../errors";
import { readBody, type BodySource } from "./body";
import { parseJson } from "./json";

export function requireApiVersion(request: HttpRequest, supported: readonly string[]): string {
  const version = request.query.get("api-version");
  if (!version) throw Errors.missingApiVersion();
  if (!supported.includes(version)) throw Errors.unsupportedApiVersion(version, supported);
  return version;
}

/** The first problem, named by its field path, is what a caller needs to fix first. */
export function validationError(error: z.ZodError, root?: string) {
  const issue = error.issues[0];
  const field = [root, ...(issue?.path ?? []).map(String)].filter(Boolean).join(".") || "(body)";
  return Errors.invalidField(field, issue?.message ?? "invalid");
}

/** A JSON body: at most `maxBytes` (./body.ts), depth and width bounded (./json.ts), then validated. */
export async function readJson<T extends z.ZodType>(
  request: BodySource,
  schema: T,
  maxBytes: number,
): Promise<z.output<T>> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw Errors.unsupportedMediaType("Send the body as application/json.");
  }
  const value = parseJson((await readBody(request, maxBytes)).toString("utf8"));
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(parsed.error);
  return parsed.data;
}

export function parseQuery<T extends z.ZodType>(request: HttpRequest, schema: T): z.output<T> {
  const raw: Record<string, string> = {};
  request.query.forEach((value, key) => {
    raw[key] = value;
  });
  delete raw["api-version"];
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw validationError(parsed.error, "query");
  return parsed.data;
}

export function parseParam<T extends z.ZodType>(request: HttpRequest, name: string, schema: T): z.output<T> {
  const parsed = schema.safeParse(request.params[name]);
  if (!parsed.success) throw validationError(parsed.error, name);
  return parsed.data;
}

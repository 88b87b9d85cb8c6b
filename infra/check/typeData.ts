// Azure's resource type data, as the Bicep compiler reads it: the `types.json` files of
// Azure/bicep-types-az (infra/types/generated/...), read with the `bicep-types` package. Only
// the files for the types and API versions infra/ declares are kept; `npm run infra:types-update`
// refreshes them.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { type BicepType, type ResourceType, TypeBaseKind, readTypesJson } from "bicep-types";

export interface TypeFile {
  /** Path relative to the data root, e.g. `generated/web/microsoft.web/2024-04-01/types.json`. */
  readonly path: string;
  readonly types: readonly BicepType[];
}

export interface ResourceTypeEntry {
  readonly file: TypeFile;
  readonly resource: ResourceType;
}

/** infra/types/source.json: where the copy comes from, and what it lacks. */
export interface TypeSource {
  readonly repository: string;
  readonly commit: string;
  /** Declared `type@apiVersion`s whose file the copy does not have (types-update fills them in). */
  readonly missing: readonly string[];
}

export interface TypeData {
  /** `Microsoft.Web/sites@2024-04-01`, lower-cased, to its entry (ARM types are case-insensitive). */
  readonly resources: ReadonlyMap<string, ResourceTypeEntry>;
  readonly files: readonly TypeFile[];
  readonly source: TypeSource;
  /** `source.missing`, lower-cased. */
  readonly missing: ReadonlySet<string>;
}

export const TYPES_DIR = join("infra", "types");
export const SOURCE_FILE = "source.json";

export const typeKey = (type: string, apiVersion: string) => `${type}@${apiVersion}`.toLowerCase();

/** Every `types.json` under `dir`, relative paths sorted. */
export function typeFilePaths(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((p) => p.split("\\").join("/"))
    .filter((p) => p.endsWith("/types.json"))
    .sort();
}

export function loadTypeData(dir: string): TypeData {
  const files = typeFilePaths(dir).map((path) => ({
    path,
    types: readTypesJson(readFileSync(join(dir, path), "utf8")),
  }));
  const resources = new Map<string, ResourceTypeEntry>();
  for (const file of files) {
    for (const type of file.types) {
      if (type.type !== TypeBaseKind.ResourceType) continue;
      const at = type.name.lastIndexOf("@");
      resources.set(typeKey(type.name.slice(0, at), type.name.slice(at + 1)), { file, resource: type });
    }
  }
  const source = JSON.parse(readFileSync(join(dir, SOURCE_FILE), "utf8")) as TypeSource;
  return { resources, files, source, missing: new Set(source.missing.map((m) => m.toLowerCase())) };
}

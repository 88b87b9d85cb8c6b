// Every resource declaration against Azure's own type data (bicep-types-az), as the Bicep
// compiler would check it: the type and API version exist; every property written exists and
// is writable; a literal value (or each @allowed value of a parameter) is one the data allows;
// required properties are present. Values computed at deployment are not judged here.
import {
  type BicepType,
  type ObjectTypeProperty,
  ObjectTypePropertyFlags,
  TypeBaseKind,
  TypeReference,
} from "bicep-types";
import type { Node } from "web-tree-sitter";
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { declarationBody } from "../resources";
import {
  type Literal,
  arrayItems,
  literalValue,
  parameters,
  propertyKey,
  stringValue,
  walk,
} from "../syntax";
import { type TypeData, type TypeFile, typeKey } from "../typeData";

const RULE = "azure-types";

/** Keys of a declaration body that are Bicep's own, not properties of the resource. */
const BICEP_KEYS = new Set(["parent", "scope", "dependson"]);

export interface Declared {
  readonly node: Node;
  readonly symbol: string;
  readonly type: string;
  readonly apiVersion: string;
  readonly existing: boolean;
}

/** A declaration's type and API version; a nested one without `@version` takes its parent's. */
function declared(node: Node): Omit<Declared, "node" | "symbol" | "existing"> | undefined {
  const text = stringValue(node.namedChildren[1]);
  if (text === undefined) return undefined;
  const [type = "", apiVersion] = text.split("@");
  for (let up = node.parent; up; up = up.parent) {
    if (up.type !== "resource_declaration") continue;
    const parent = declared(up);
    if (!parent) return undefined;
    return {
      type: type.includes("/") ? type : `${parent.type}/${type}`,
      apiVersion: apiVersion ?? parent.apiVersion,
    };
  }
  return apiVersion === undefined ? undefined : { type, apiVersion };
}

/** Every resource declaration of a file with its full type and API version. */
export function declarations(file: BicepFile): Declared[] {
  const found: Declared[] = [];
  for (const node of walk(file.root)) {
    if (node.type !== "resource_declaration") continue;
    const d = declared(node);
    if (!d) continue;
    found.push({
      ...d,
      node,
      symbol: node.namedChildren[0]?.text ?? "",
      existing: node.children.some((c) => c.type === "existing"),
    });
  }
  return found;
}

type Report = (node: Node, message: string) => void;

class Checker {
  constructor(
    private readonly file: BicepFile,
    private readonly types: TypeFile,
    private readonly report: Report,
  ) {}

  private resolve(ref: unknown): BicepType | undefined {
    // Cross-file references (other type files) are not kept: unknown, so not judged.
    return ref instanceof TypeReference ? this.types.types[ref.index] : undefined;
  }

  /** The @allowed values of a parameter of this file, if `node` names one that has them. */
  private allowedOfParam(node: Node): Literal[] | undefined {
    if (node.type !== "identifier") return undefined;
    const param = parameters(this.file.root).find((p) => p.name === node.text);
    const allowed = param?.decorators.find((d) => d.name === "allowed")?.args[0];
    const values = literalValue(allowed);
    return Array.isArray(values) ? values : undefined;
  }

  /** Why `value` does not fit `type`, or undefined when it fits (or cannot be judged). */
  private misfit(type: BicepType | undefined, value: Literal): string | undefined {
    if (!type) return undefined;
    switch (type.type) {
      case TypeBaseKind.StringLiteralType:
        return value === type.value ? undefined : `must be '${type.value}'`;
      case TypeBaseKind.UnionType: {
        const elements = type.elements.map((e) => this.resolve(e));
        if (elements.some((e) => e === undefined || this.misfit(e, value) === undefined)) return undefined;
        const literals = elements.flatMap((e) =>
          e?.type === TypeBaseKind.StringLiteralType ? [`'${e.value}'`] : [],
        );
        return `is not one of ${literals.join(", ")}`;
      }
      case TypeBaseKind.StringType: {
        if (typeof value !== "string") return "must be a string";
        if (type.minLength !== undefined && value.length < type.minLength)
          return `is shorter than ${type.minLength} characters`;
        if (type.maxLength !== undefined && value.length > type.maxLength)
          return `is longer than ${type.maxLength} characters`;
        if (type.pattern !== undefined && !new RegExp(type.pattern).test(value))
          return `does not match ${type.pattern}`;
        return undefined;
      }
      case TypeBaseKind.IntegerType: {
        if (typeof value !== "number" || !Number.isInteger(value)) return "must be an integer";
        if (type.minValue !== undefined && value < type.minValue)
          return `is below the minimum ${type.minValue}`;
        if (type.maxValue !== undefined && value > type.maxValue)
          return `is above the maximum ${type.maxValue}`;
        return undefined;
      }
      case TypeBaseKind.BooleanType:
        return typeof value === "boolean" ? undefined : "must be true or false";
      case TypeBaseKind.ArrayType:
        return Array.isArray(value) ? undefined : "must be an array";
      case TypeBaseKind.ObjectType:
      case TypeBaseKind.DiscriminatedObjectType:
        return typeof value === "object" && value !== null && !Array.isArray(value)
          ? undefined
          : "must be an object";
      default:
        return undefined;
    }
  }

  /** Checks the value written at `path` against `type`, descending into object and array literals. */
  check(path: string, type: BicepType | undefined, value: Node): void {
    if (!type) return;
    if (type.type === TypeBaseKind.ObjectType || type.type === TypeBaseKind.DiscriminatedObjectType) {
      if (value.type === "object") return this.object(path, type, value);
    }
    if (type.type === TypeBaseKind.ArrayType && value.type === "array") {
      const items = arrayItems(value) ?? [];
      if (type.minLength !== undefined && items.length < type.minLength)
        this.report(value, `${path} needs at least ${type.minLength} items`);
      if (type.maxLength !== undefined && items.length > type.maxLength)
        this.report(value, `${path} allows at most ${type.maxLength} items`);
      items.forEach((item, i) => this.check(`${path}[${i}]`, this.resolve(type.itemType), item));
      return;
    }
    if (type.type === TypeBaseKind.UnionType && value.type === "object") {
      // A union with exactly one object type is that object type; with several, which one is meant
      // is not decidable from the data alone.
      const options = type.elements
        .map((e) => this.resolve(e))
        .filter((t) => t?.type === TypeBaseKind.ObjectType);
      if (options.length === 1) return this.check(path, options[0], value);
      return;
    }
    const literal = value.type === "object" || value.type === "array" ? undefined : literalValue(value);
    if (literal !== undefined) {
      const why = this.misfit(type, literal);
      if (why) this.report(value, `${path}: ${JSON.stringify(literal)} ${why}`);
      return;
    }
    for (const allowed of this.allowedOfParam(value) ?? []) {
      const why = this.misfit(type, allowed);
      if (why)
        this.report(
          value,
          `${path}: @allowed value ${JSON.stringify(allowed)} of param ${value.text} ${why}`,
        );
    }
  }

  /** The properties an object literal may carry under `type` (discriminated types by their literal). */
  private propertiesOf(
    path: string,
    type: BicepType,
    object: Node,
  ): { properties: Record<string, ObjectTypeProperty>; additional: boolean } | undefined {
    if (type.type === TypeBaseKind.ObjectType)
      return { properties: type.properties, additional: type.additionalProperties !== undefined };
    if (type.type !== TypeBaseKind.DiscriminatedObjectType) return undefined;
    const property = object.namedChildren.find(
      (p) =>
        p.type === "object_property" && propertyKey(p)?.toLowerCase() === type.discriminator.toLowerCase(),
    );
    const value = property?.namedChildren[1];
    const tag = stringValue(value);
    if (tag === undefined) return undefined; // computed discriminator: cannot tell which variant
    const variant = Object.entries(type.elements).find(([k]) => k.toLowerCase() === tag.toLowerCase())?.[1];
    const resolved = this.resolve(variant);
    if (resolved?.type !== TypeBaseKind.ObjectType) {
      this.report(
        value ?? object,
        `${path}${path ? "." : ""}${type.discriminator}: '${tag}' is not one of ${Object.keys(type.elements).join(", ")}`,
      );
      return undefined;
    }
    return {
      properties: { ...type.baseProperties, ...resolved.properties },
      additional: resolved.additionalProperties !== undefined,
    };
  }

  object(path: string, type: BicepType, object: Node, bicepKeys = false): void {
    const shape = this.propertiesOf(path, type, object);
    if (!shape) return;
    const names = Object.keys(shape.properties);
    const written = new Set<string>();
    const at = (key: string) => (path ? `${path}.${key}` : key);
    for (const property of object.namedChildren) {
      if (property.type !== "object_property") continue;
      const key = propertyKey(property);
      const value = property.namedChildren[1];
      if (key === undefined || !value) continue; // computed key, or a nested resource declaration
      if (bicepKeys && BICEP_KEYS.has(key.toLowerCase())) continue;
      written.add(key.toLowerCase());
      const name = names.find((n) => n.toLowerCase() === key.toLowerCase());
      if (name === undefined) {
        if (!shape.additional)
          this.report(property, `${at(key)} is not a property of this type (it has: ${names.join(", ")})`);
        continue;
      }
      const { flags, type: ref } = shape.properties[name]!;
      if (flags & ObjectTypePropertyFlags.ReadOnly) {
        this.report(property, `${at(name)} is read-only: ARM ignores or refuses a value written to it`);
        continue;
      }
      this.check(at(name), this.resolve(ref), value);
    }
    for (const [name, { flags }] of Object.entries(shape.properties)) {
      const required =
        flags & ObjectTypePropertyFlags.Required && !(flags & ObjectTypePropertyFlags.ReadOnly);
      if (required && !written.has(name.toLowerCase())) this.report(object, `${at(name)} is required`);
    }
  }
}

export function azureTypesRule(files: readonly BicepFile[], data: TypeData): Finding[] {
  const findings: Finding[] = [];
  for (const file of files) {
    for (const d of declarations(file)) {
      const report: Report = (node, message) =>
        void findings.push(finding(file, node, RULE, `${d.symbol} (${d.type}@${d.apiVersion}): ${message}`));
      const key = typeKey(d.type, d.apiVersion);
      const entry = data.resources.get(key);
      // A known gap of the copied data (infra/types/source.json), listed so it cannot grow unseen.
      if (!entry && data.missing.has(key)) continue;
      if (!entry) {
        const versions = [...data.resources.keys()]
          .filter((k) => k.startsWith(`${d.type.toLowerCase()}@`))
          .map((k) => k.slice(k.indexOf("@") + 1));
        report(
          d.node,
          `not in Azure's type data: ${versions.length > 0 ? `known API versions here: ${versions.join(", ")}` : "unknown resource type"} (npm run infra:types-update adds a new version's file)`,
        );
        continue;
      }
      const body = declarationBody(d.node);
      const checker = new Checker(file, entry.file, report);
      const bodyType = entry.file.types[entry.resource.body.index];
      // An `existing` reference names a resource; only its name (and parent/scope) is written.
      if (body && bodyType && !d.existing) checker.object("", bodyType, body, true);
    }
  }
  return findings;
}

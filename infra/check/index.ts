// Everything `npm test` checks about infra/ without the Bicep CLI: syntax through
// tree-sitter-bicep, then the rules on the syntax trees.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Finding } from "./finding";
import { loadBicep, templatePaths } from "./files";
import { syntaxErrors, type BicepFile } from "./parser";
import { TYPES_DIR, type TypeData, loadTypeData } from "./typeData";
import { azureTypesRule } from "./rules/azureTypes";
import { appSettingsRule, type SettingsCatalogue } from "./rules/appSettings";
import { azdOutputsRule, descriptionRule, parametersFileRule } from "./rules/declarations";
import { diagnosticsRule } from "./rules/diagnostics";
import { eventHandlerRule } from "./rules/eventHandler";
import { flexRule } from "./rules/flex";
import { localAuthRule } from "./rules/localAuth";
import { modulesRule } from "./rules/modules";
import { referencesRule } from "./rules/references";
import { roleAssignmentRule } from "./rules/roleAssignments";
import { secretsRule } from "./rules/secrets";
import { skuUnitsRule } from "./rules/skuUnits";

export interface InfraExpectations extends SettingsCatalogue {
  /** Route of the relay-events function without the host's route prefix, e.g. `relay/events`. */
  readonly relayEventsRoute: string;
  readonly relayEventsSystemEvents: readonly string[];
}

/** host.json's `extensions.http.routePrefix` ("api" when unset, as the Functions host does). */
export function routePrefix(repoRoot: string): string {
  const host = JSON.parse(readFileSync(join(repoRoot, "host.json"), "utf8")) as {
    extensions?: { http?: { routePrefix?: string } };
  };
  return host.extensions?.http?.routePrefix ?? "api";
}

/** The expectations plus what the repository itself says (host.json, main.parameters.json). */
export function inputsFor(repoRoot: string, expected: InfraExpectations): Inputs {
  const parametersJson: unknown = JSON.parse(
    readFileSync(join(repoRoot, "infra", "main.parameters.json"), "utf8"),
  );
  return { ...expected, routePrefix: routePrefix(repoRoot), parametersJson, typeData: typeDataOf(repoRoot) };
}

const typeDataCache = new Map<string, TypeData>();

/** infra/types, read once per process (about 1 MB of JSON). */
function typeDataOf(repoRoot: string): TypeData {
  const dir = join(repoRoot, TYPES_DIR);
  let data = typeDataCache.get(dir);
  if (!data) typeDataCache.set(dir, (data = loadTypeData(dir)));
  return data;
}

/** Loads infra/ (main.bicep first) and runs checkFiles on it. */
export async function checkInfra(repoRoot: string, expected: InfraExpectations): Promise<Finding[]> {
  const files = await loadBicep(repoRoot, templatePaths(join(repoRoot, "infra")));
  return checkFiles(files, inputsFor(repoRoot, expected));
}

export interface Inputs extends InfraExpectations {
  readonly routePrefix: string;
  /** The parsed main.parameters.json. */
  readonly parametersJson: unknown;
  /** Azure's resource type data (infra/types). */
  readonly typeData: TypeData;
}

/** `files[0]` is the entry template: "nothing deployed" findings point at it. */
export function checkFiles(files: readonly BicepFile[], inputs: Inputs): Finding[] {
  const syntax = files.flatMap(syntaxErrors);
  // Rules on a broken tree would only add noise to the syntax errors.
  if (syntax.length > 0) return syntax;
  const [entry] = files;
  if (!entry) return [];
  const path = `/${[inputs.routePrefix, inputs.relayEventsRoute].filter((s) => s !== "").join("/")}`;
  return [
    ...azureTypesRule(files, inputs.typeData),
    ...roleAssignmentRule(files),
    ...secretsRule(files),
    ...localAuthRule(files),
    ...eventHandlerRule(files, { path, systemEvents: inputs.relayEventsSystemEvents }),
    ...appSettingsRule(files, inputs),
    ...flexRule(files),
    ...diagnosticsRule(files),
    ...modulesRule(files),
    ...referencesRule(files),
    ...descriptionRule(files),
    ...skuUnitsRule(entry),
    ...azdOutputsRule(entry),
    ...parametersFileRule(entry, inputs.parametersJson),
  ];
}

// The function app's settings against the config catalogue the code validates at
// startup (shared/config.ts): a required setting the template forgets, or a name it
// misspells, would otherwise only show up as a failed start in Azure.
import type { Node } from "web-tree-sitter";
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { deployed, type Resource } from "../resources";
import { parameterBound, propertyKey, propertyValue, properties, stringValue } from "../syntax";

const RULE = "app-settings";

export interface SettingInfo {
  readonly name: string;
  readonly requiredIn: readonly string[];
  readonly localOnly: boolean;
}

export interface SettingsCatalogue {
  /** Every setting the code reads (configSettings()). */
  readonly settings: readonly SettingInfo[];
  /** Settings the Functions platform reads itself (PLATFORM_SETTINGS). */
  readonly platform: readonly string[];
}

/** Known names that still must not be set here, and why. */
const REFUSED: Readonly<Record<string, string>> = {
  AzureWebJobsStorage:
    "a connection string with the account key; use AzureWebJobsStorage__accountName + managed identity",
  FUNCTIONS_WORKER_RUNTIME:
    "Flex Consumption takes the runtime from functionAppConfig.runtime and rejects this setting",
  FUNCTIONS_EXTENSION_VERSION: "Flex Consumption rejects this setting",
  WEBSITE_RUN_FROM_PACKAGE: "Flex Consumption deploys from functionAppConfig.deployment, not this setting",
};

/** Host storage and telemetry through the managed identity, never a key. */
const IDENTITY_SETTINGS = [
  "AzureWebJobsStorage__accountName",
  "AzureWebJobsStorage__credential",
  "AzureWebJobsStorage__clientId",
  "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
];

/** Settings that carry keys: allowed only empty or as a Key Vault reference. */
const KEY_VAULT_ONLY = new Set(["SERVICE_SAS_POLICIES"]);

/** The possible values of an expression through `c ? a : b` and parentheses. */
function outcomes(node: Node): Node[] {
  if (node.type === "parenthesized_expression" && node.namedChildren.length === 1) {
    return node.namedChildren.flatMap(outcomes);
  }
  if (node.type !== "ternary_expression") return [node];
  const consequence = node.childForFieldName("consequence");
  const alternative = node.childForFieldName("alternative");
  return consequence && alternative ? [...outcomes(consequence), ...outcomes(alternative)] : [node];
}

function isEmptyOrKeyVaultReference(node: Node): boolean {
  if (stringValue(node) === "") return true;
  const first = node.type === "string" ? node.namedChildren[0] : undefined;
  return first?.type === "string_content" && first.text.startsWith("@Microsoft.KeyVault(");
}

/**
 * The app treats an empty setting as unset, so a required setting must be provably
 * non-empty: literal text, or a parameter declared with @minLength(1+), in a string or alone.
 */
function nonEmpty(file: BicepFile, value: Node): boolean {
  if (value.type === "string") {
    return value.namedChildren.some((part) =>
      part.type === "interpolation"
        ? part.namedChildren.some((inner) => nonEmpty(file, inner))
        : part.type === "string_content" && part.text !== "",
    );
  }
  return value.type === "identifier" && (parameterBound(file.root, value.text, "minLength") ?? 0) >= 1;
}

function appSettingsResources(files: readonly BicepFile[]): { file: BicepFile; resource: Resource }[] {
  return files.flatMap((file) =>
    deployed(file.root, "Microsoft.Web/sites/config")
      .filter((r) => stringValue(propertyValue(r.body, "name")) === "appsettings")
      .map((resource) => ({ file, resource })),
  );
}

type Report = (node: Node, message: string) => void;

/** Checks each name and value set; returns them by name. */
function checkEach(object: Node, catalogue: SettingsCatalogue, report: Report): Map<string, Node> {
  const known = new Map(catalogue.settings.map((s) => [s.name, s]));
  const platform = new Set(catalogue.platform);
  const set = new Map<string, Node>();
  for (const property of properties(object)) {
    const name = propertyKey(property);
    const value = property.namedChildren[1];
    if (name === undefined || !value) {
      report(property, "setting names must be literal");
      continue;
    }
    set.set(name, value);
    const refused = REFUSED[name];
    if (refused) report(property, `${name} must not be set: ${refused}`);
    else if (known.get(name)?.localOnly)
      report(property, `${name} is local-only (connection strings); azure mode refuses it`);
    else if (!known.has(name) && !platform.has(name))
      report(property, `${name} is read neither by the app nor by the platform`);
    if (KEY_VAULT_ONLY.has(name) && !outcomes(value).every(isEmptyOrKeyVaultReference)) {
      report(property, `${name} carries keys: only '' or '@Microsoft.KeyVault(SecretUri=...)' may be set`);
    }
  }
  return set;
}

/** What must be set, and to what, for a keyless start in azure mode. */
function checkRequired(
  file: BicepFile,
  object: Node,
  set: Map<string, Node>,
  catalogue: SettingsCatalogue,
  report: Report,
): void {
  if (stringValue(set.get("DEPLOYMENT_MODE")) !== "azure") {
    report(object, "DEPLOYMENT_MODE must be 'azure' (keyless)");
  }
  for (const name of IDENTITY_SETTINGS) {
    if (!set.has(name)) report(object, `${name} is required for identity-based host storage and telemetry`);
  }
  if (stringValue(set.get("AzureWebJobsStorage__credential")) !== "managedidentity") {
    report(object, "AzureWebJobsStorage__credential must be 'managedidentity'");
  }
  for (const s of catalogue.settings.filter((s) => s.requiredIn.includes("azure"))) {
    const value = set.get(s.name);
    if (!value) report(object, `${s.name} is required in azure mode but not set`);
    else if (!nonEmpty(file, value)) {
      report(
        value,
        `${s.name} is required in azure mode but may be empty (use a literal or a @minLength(1) param)`,
      );
    }
  }
}

export function appSettingsRule(files: readonly BicepFile[], catalogue: SettingsCatalogue): Finding[] {
  const found = appSettingsResources(files);
  const entry = files[0];
  if (found.length !== 1 || !found[0]) {
    const where = found[0]?.file ?? entry;
    const message = `expected one appsettings resource, found ${found.length}`;
    return where ? [finding(where, where.root, RULE, message)] : [];
  }
  const { file, resource } = found[0];
  const findings: Finding[] = [];
  const report: Report = (node, message) => void findings.push(finding(file, node, RULE, message));
  const object = propertyValue(resource.body, "properties");
  if (object?.type !== "object") {
    report(resource.node, "properties must be an object literal, so every setting name can be checked");
    return findings;
  }
  checkRequired(file, object, checkEach(object, catalogue, report), catalogue, report);
  return findings;
}

// What main.bicep hands on for the audience, an existing hub, the housekeeping timer and the
// deployer, read from the syntax trees (nothing here can compile Bicep).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Node } from "web-tree-sitter";
import { declarationBody, deployed } from "../../infra/check/resources";
import { literalValue, parameterDefault, parameters, propertyAt } from "../../infra/check/syntax";
import { createRouteTable } from "../../shared/routes";
import { REPO, templates } from "./templates";

async function file(path: string) {
  const found = (await templates()).find((f) => f.path === path);
  if (!found) throw new Error(`no ${path}`);
  return found;
}

const topLevel = (root: Node, type: string, name: string) =>
  root.namedChildren.find((c) => c.type === type && c.namedChildren[0]?.text === name);
const variable = (root: Node, name: string) =>
  topLevel(root, "variable_declaration", name)?.lastNamedChild?.text;
const moduleParam = (root: Node, module: string, param: string) =>
  propertyAt(declarationBody(topLevel(root, "module_declaration", module)!), "params", param)?.text;
const squash = (text: string | undefined) => text?.replace(/\s+/g, " ");

describe("the relay-events audience", () => {
  test("the app accepts every entraAudience value (RELAY_EVENTS_AUDIENCE, comma-separated)", async () => {
    const main = (await file("infra/main.bicep")).root;
    expect(moduleParam(main, "api", "relayEventsAudience")).toBe("relayAudiences");
    expect(variable(main, "relayAudiences")).toBe("join(relayAudienceList, ',')");
    expect(squash(variable(main, "relayAudienceList"))).toBe(
      "map(filter(split(empty(relayEventsAudience) ? entraAudience : relayEventsAudience, ','), a => !empty(trim(a))), a => trim(a))",
    );
    const api = (await file("infra/app/api.bicep")).root;
    const [settings] = deployed(api, "Microsoft.Web/sites/config");
    expect(propertyAt(settings!.body, "properties", "RELAY_EVENTS_AUDIENCE")?.text).toBe(
      "relayEventsAudience",
    );
  });

  test("Web PubSub asks for its token for the first one", async () => {
    const main = (await file("infra/main.bicep")).root;
    expect(moduleParam(main, "hub", "relayEventsAudience")).toBe("relayTokenAudience");
    expect(variable(main, "relayTokenAudience")).toBe("relayAudienceList[0]");
  });
});

test("an existing hub without its resource group stops template validation with a sentence that says so", async () => {
  const main = (await file("infra/main.bicep")).root;
  expect(squash(variable(main, "iotHubResourceGroup"))).toBe(
    "createIotHub ? rg.name : (empty(existingIotHubResourceGroup) ? string(int('existingIotHubResourceGroup (EXISTING_IOTHUB_RESOURCE_GROUP) is required with existingIotHubName ${existingIotHubName}')) : existingIotHubResourceGroup)",
  );
  expect(moduleParam(main, "iotHubAccess", "iotHubName")).toBe("iotHubName");
  expect(declarationBody(topLevel(main, "module_declaration", "iotHubAccess")!)?.text).toContain(
    "scope: resourceGroup(iotHubResourceGroup)",
  );
});

test("the housekeeping timer gets always-ready instances only when asked (default 0), under its function name", async () => {
  const main = (await file("infra/main.bicep")).root;
  const param = parameters(main).find((p) => p.name === "housekeepingAlwaysReady")!;
  expect(literalValue(parameterDefault(param.node))).toBe(0);
  expect(moduleParam(main, "api", "housekeepingAlwaysReady")).toBe("housekeepingAlwaysReady");
  const api = (await file("infra/app/api.bicep")).root;
  const [site] = deployed(api, "Microsoft.Web/sites");
  const alwaysReady = propertyAt(
    site!.body,
    "properties",
    "functionAppConfig",
    "scaleAndConcurrency",
    "alwaysReady",
  );
  const [timer] = createRouteTable(() => Promise.reject(new Error("unused"))).timers;
  expect(squash(alwaysReady?.text)).toContain(
    `housekeepingAlwaysReady > 0 ? [{ name: 'function:${timer!.name}', instanceCount: housekeepingAlwaysReady }] : []`,
  );
});

test("the deployer (azd's AZURE_PRINCIPAL_ID) gets IoT Hub Registry Contributor, and nothing when empty", async () => {
  const parametersJson = JSON.parse(readFileSync(join(REPO, "infra", "main.parameters.json"), "utf8"));
  expect(parametersJson.parameters.principalId).toEqual({ value: "${AZURE_PRINCIPAL_ID=}" });
  const main = (await file("infra/main.bicep")).root;
  expect(moduleParam(main, "iotHubAccess", "deployerPrincipalId")).toBe("principalId");
  const access = (await file("infra/app/iothub-access.bicep")).root;
  const grant = deployed(access, "Microsoft.Authorization/roleAssignments").find(
    (r) => r.symbol === "deployerRegistry",
  );
  expect(grant?.node.text).toContain("= if (!empty(deployerPrincipalId)) {");
  expect(propertyAt(grant!.body, "properties", "roleDefinitionId")?.text).toContain(
    "roles.iotHubRegistryContributor",
  );
  const roles = JSON.parse(readFileSync(join(REPO, "infra", "app", "roles.json"), "utf8"));
  // Built-in role "IoT Hub Registry Contributor" (Azure built-in roles, Internet of Things).
  expect(roles.iotHubRegistryContributor).toBe("4ea46cd5-c1b2-4a8e-910b-273211f9ce47");
});

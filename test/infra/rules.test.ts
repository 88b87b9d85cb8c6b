// Each rule passes on the real templates (infra.test.ts) and fails, at the right place,
// on a single edit of them.
import { parseBicep, syntaxErrors } from "../../infra/check/parser";
import { referencesRule } from "../../infra/check/rules/references";
import { check, mutated, templates } from "./templates";

const API = "infra/app/api.bicep";
const HUB = "infra/app/webpubsub-hub.bicep";
const STORAGE = "infra/app/storage.bicep";

async function findingsOf(file: string, from: string, to: string): Promise<string[]> {
  return check(mutated(file, from, to));
}

describe("role assignments", () => {
  test("a name that is not guid(scope.id, principal, role) is refused", async () => {
    const findings = await findingsOf(
      STORAGE,
      "guid(storage.id, principalId, roles.storageBlobDataOwner)",
      "'blob-owner'",
    );
    expect(findings).toEqual([
      expect.stringMatching(
        /^infra\/app\/storage\.bicep:\d+:1 \[role-assignment\] blobDataOwner: name must be guid/,
      ),
      // A malformed assignment does not count as granting its role.
      "infra/main.bicep:1:1 [role-assignment] no role assignment grants roles.storageBlobDataOwner",
    ]);
  });

  test("the guid must be seeded with the assignment's own scope", async () => {
    const findings = await findingsOf(
      STORAGE,
      "guid(storage.id, principalId, roles.storageBlobDataOwner)",
      "guid(resourceGroup().id, principalId, roles.storageBlobDataOwner)",
    );
    expect(findings).toEqual([expect.stringContaining("guid() must start with storage.id")]);
  });

  test("principalType must be explicit", async () => {
    const findings = await findingsOf(
      "infra/app/monitoring.bicep",
      "    principalType: 'ServicePrincipal'\n",
      "",
    );
    expect(findings).toEqual([
      expect.stringContaining("metricsPublisher: needs an explicit properties.principalType"),
    ]);
  });

  test("the guid's role must be the role granted", async () => {
    const findings = await findingsOf(
      "infra/app/webpubsub.bicep",
      "'Microsoft.Authorization/roleDefinitions', roles.webPubSubServiceOwner)",
      "'Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)",
    );
    expect(findings).toEqual([expect.stringContaining("role roles.webPubSubServiceOwner is not the one")]);
  });

  test("each of the five roles must be granted somewhere", async () => {
    const findings = await findingsOf(
      "infra/app/iothub-access.bicep",
      "roleAssignments@2022-04-01' = {",
      "roleAssignments@2022-04-01' existing = {",
    );
    expect(findings).toEqual([
      expect.stringContaining("no role assignment grants roles.iotHubDataContributor"),
    ]);
  });
});

describe("no secrets", () => {
  test("listKeys, secret-looking outputs and literal keys are refused", async () => {
    const file = await parseBicep(
      "infra/leak.bicep",
      [
        "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: 'x' }",
        "output STORAGE string = st.listKeys().keys[0].value",
        "output AI_CONNECTION_STRING string = 'InstrumentationKey=1'",
        "@secure()",
        "output OTHER string = 'AccountName=x;AccountKey=abc'",
      ].join("\n"),
    );
    const findings = await check(templates().then((all) => [...all, file]));
    expect(findings).toEqual([
      expect.stringMatching(/^infra\/leak\.bicep:2:25 \[no-secrets\] listKeys\(\)/),
      expect.stringMatching(/^infra\/leak\.bicep:5:24 \[no-secrets\] a key is written/),
      "infra/leak.bicep:2:28 [no-secrets] output STORAGE exposes listKeys",
      "infra/leak.bicep:2:39 [no-secrets] output STORAGE exposes keys",
      "infra/leak.bicep:3:1 [no-secrets] output AI_CONNECTION_STRING looks like a secret",
      "infra/leak.bicep:5:1 [no-secrets] output OTHER is @secure(): outputs carry no secrets",
    ]);
  });

  test("passing the App Insights connection string through an output is refused", async () => {
    const findings = await findingsOf(
      "infra/app/monitoring.bicep",
      "output applicationInsightsName string = appInsights.name",
      "output applicationInsightsName string = appInsights.properties.ConnectionString",
    );
    expect(findings).toEqual([expect.stringContaining("exposes ConnectionString")]);
  });
});

describe("keyless services", () => {
  test.each([
    [STORAGE, "allowSharedKeyAccess: false", "allowSharedKeyAccess: true", "allowSharedKeyAccess: false"],
    [
      "infra/app/webpubsub.bicep",
      "disableLocalAuth: true",
      "disableLocalAuth: false",
      "disableLocalAuth: true",
    ],
    [
      "infra/app/iothub.bicep",
      "disableLocalAuth: true",
      "disableLocalAuth: !false",
      "disableLocalAuth: true",
    ],
    ["infra/app/monitoring.bicep", "    DisableLocalAuth: true\n", "", "DisableLocalAuth: true"],
    [
      "infra/app/monitoring.bicep",
      "disableLocalAuth: true",
      "disableLocalAuth: false",
      "features.disableLocalAuth: true",
    ],
  ])("%s: %s -> %s is refused", async (file, from, to, message) => {
    expect(await findingsOf(file, from, to)).toEqual([expect.stringContaining(`[keyless]`)]);
    expect((await findingsOf(file, from, to))[0]).toContain(message);
  });

  test("a service type that is no longer deployed is reported", async () => {
    const findings = await findingsOf(
      "infra/app/monitoring.bicep",
      "resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {",
      "resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {",
    );
    expect(findings).toContain(
      "infra/main.bicep:1:1 [keyless] no Microsoft.OperationalInsights/workspaces is deployed",
    );
  });
});

describe("event handler", () => {
  test("a URL path other than the control plane's route is refused", async () => {
    const findings = await findingsOf(HUB, "/api/relay/events'", "/api/relay/event'");
    expect(findings).toEqual([
      expect.stringContaining("urlTemplate path /api/relay/event must be /api/relay/events"),
    ]);
  });

  test("the expected path follows the host's route prefix", async () => {
    const findings = await check(templates(), { routePrefix: "v1" });
    expect(findings).toEqual([expect.stringContaining("must be /v1/relay/events")]);
  });

  test("a missing system event is refused", async () => {
    const findings = await findingsOf(HUB, "          'disconnected'\n", "");
    expect(findings).toEqual([
      expect.stringContaining("systemEvents must be exactly [connect, disconnected]"),
    ]);
  });

  test("auth other than ManagedIdentity is refused", async () => {
    const findings = await findingsOf(HUB, "type: 'ManagedIdentity'", "type: 'None'");
    expect(findings).toEqual([expect.stringContaining("auth.type must be 'ManagedIdentity'")]);
  });
});

describe("app settings against shared/config.ts", () => {
  test("a setting required in azure mode that is missing is reported", async () => {
    const findings = await findingsOf(API, "    IOTHUB_HOST_NAME: iotHubHostName\n", "");
    expect(findings).toEqual([
      expect.stringContaining("IOTHUB_HOST_NAME is required in azure mode but not set"),
    ]);
  });

  test("a required setting that may be empty is reported: the app reads empty as unset", async () => {
    const findings = await findingsOf(
      API,
      "@minLength(1)\nparam entraRoles string",
      "param entraRoles string",
    );
    expect(findings).toEqual([
      expect.stringMatching(
        /api\.bicep:\d+:\d+ \[app-settings\] ENTRA_ROLES is required in azure mode but may be empty/,
      ),
    ]);
    expect(
      await findingsOf(
        API,
        "WEBPUBSUB_ENDPOINT: 'https://${webPubSubHostName}'",
        "WEBPUBSUB_ENDPOINT: '${webPubSubHostName}'",
      ),
    ).toEqual([]);
  });

  test("a misspelt setting is reported as unknown", async () => {
    const findings = await findingsOf(
      API,
      "TABLES_ENDPOINT: tablesEndpoint",
      "TABLE_ENDPOINT: tablesEndpoint",
    );
    expect(findings).toEqual([
      expect.stringContaining("TABLE_ENDPOINT is read neither by the app nor by the platform"),
      expect.stringContaining("TABLES_ENDPOINT is required in azure mode but not set"),
    ]);
  });

  test("local-only connection strings and key-based host storage are refused", async () => {
    const findings = await findingsOf(
      API,
      "    LOG_LEVEL: logLevel\n",
      "    LOG_LEVEL: logLevel\n    IOTHUB_CONNECTION_STRING: ''\n    AzureWebJobsStorage: ''\n",
    );
    expect(findings).toEqual([
      expect.stringContaining("IOTHUB_CONNECTION_STRING is local-only"),
      expect.stringContaining("AzureWebJobsStorage must not be set"),
    ]);
  });

  test("SAS policies (keys) may only be a Key Vault reference", async () => {
    const findings = await findingsOf(
      API,
      "empty(sasPoliciesSecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${sasPoliciesSecretUri})'",
      "sasPoliciesSecretUri",
    );
    expect(findings).toEqual([expect.stringContaining("SERVICE_SAS_POLICIES carries keys")]);
  });

  test("DEPLOYMENT_MODE must be azure and host storage identity-based", async () => {
    expect(await findingsOf(API, "DEPLOYMENT_MODE: 'azure'", "DEPLOYMENT_MODE: 'local'")).toEqual([
      expect.stringContaining("DEPLOYMENT_MODE must be 'azure'"),
    ]);
    expect(
      await findingsOf(
        API,
        "AzureWebJobsStorage__credential: 'managedidentity'",
        "AzureWebJobsStorage__credential: ''",
      ),
    ).toEqual([expect.stringContaining("AzureWebJobsStorage__credential must be 'managedidentity'")]);
  });
});

describe("Flex Consumption", () => {
  test("always-ready for the http group must be guaranteed >= 1", async () => {
    const findings = await findingsOf(
      API,
      "@minValue(1)\n@maxValue(1000)\nparam alwaysReadyInstances",
      "@minValue(0)\n@maxValue(1000)\nparam alwaysReadyInstances",
    );
    expect(findings).toEqual([
      expect.stringContaining("alwaysReady needs { name: 'http', instanceCount: >= 1 }"),
    ]);
  });
});

describe("declarations", () => {
  test("a parameter without @description is reported", async () => {
    const findings = await findingsOf(
      "infra/app/identity.bicep",
      "@description('Tags applied to the identity.')\n",
      "",
    );
    expect(findings).toEqual([
      expect.stringMatching(/identity\.bicep:\d+:1 \[description\] param tags has no @description/),
    ]);
  });

  test("entry outputs must be UPPER_SNAKE", async () => {
    const findings = await findingsOf(
      "infra/main.bicep",
      "output WEBPUBSUB_HUB string",
      "output webPubSubHub string",
    );
    expect(findings).toEqual([expect.stringContaining("output webPubSubHub must be UPPER_SNAKE")]);
  });

  test("main.parameters.json must match main.bicep", async () => {
    const findings = await check(templates(), {
      parametersJson: { parameters: { environmentName: {}, typo: {} } },
    });
    expect(findings).toEqual([
      "infra/main.bicep:1:1 [parameters-file] main.parameters.json sets unknown param typo",
      expect.stringContaining("param location has no default and is not in main.parameters.json"),
      expect.stringContaining("param entraAudience has no default and is not in main.parameters.json"),
    ]);
  });
});

describe("diagnostic settings", () => {
  test("Web PubSub and IoT Hub logs must reach the workspace", async () => {
    const findings = await findingsOf(
      "infra/app/iothub-access.bicep",
      "  scope: iotHub\n  properties: {\n    workspaceId",
      "  scope: iotHub\n  properties: {\n    storageAccountId",
    );
    expect(findings).toEqual([
      expect.stringContaining("diagnostics: properties.workspaceId must be set"),
      "infra/main.bicep:1:1 [diagnostics] no diagnostic setting sends Microsoft.Devices/IotHubs logs to Log Analytics",
    ]);
  });
});

describe("module wiring", () => {
  test("a required module param that is not passed is reported", async () => {
    const findings = await findingsOf("infra/main.bicep", "    logLevel: logLevel\n", "");
    expect(findings).toEqual([
      expect.stringMatching(
        /main\.bicep:\d+:1 \[modules\] module api: does not pass required param logLevel/,
      ),
    ]);
  });

  test("a param the module does not declare is reported", async () => {
    const findings = await findingsOf(
      "infra/main.bicep",
      "    logLevel: logLevel\n",
      "    logLevel: logLevel\n    logLvl: logLevel\n",
    );
    expect(findings).toEqual([
      expect.stringContaining("module api: passes logLvl, which infra/app/api.bicep does not declare"),
    ]);
  });

  test("reading an output the module does not have is reported", async () => {
    const findings = await findingsOf(
      "infra/main.bicep",
      "output CONTROL_PLANE_URL string = 'https://${api.outputs.hostName}/api'",
      "output CONTROL_PLANE_URL string = 'https://${api.outputs.host}/api'",
    );
    expect(findings).toEqual([
      expect.stringMatching(/main\.bicep:\d+:\d+ \[modules\] module api has no output host$/),
    ]);
  });
});

describe("references", () => {
  const source = [
    "param roles array",
    "var pairs = [for (r, i) in roles: '${r.name}-${i}']",
    "var ids = map(roles, x => x.id)",
    "var indexes = map(roles, (x, i) => i)",
    "var joined = sys.concat(pairs, ids, indexes)",
    "func twice(p string) string => '${p}${p}'",
    "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {",
    "  name: twice('x')",
    "  resource blobs 'blobServices' = {",
    "    name: 'default'",
    "  }",
    "}",
    "var blobId = st::blobs.id",
    "var counted = [for k in range(0, 3): k]",
  ].join("\n");

  test("declared names, loop and lambda variables and namespaces resolve", async () => {
    const file = await parseBicep("infra/refs.bicep", source);
    expect(syntaxErrors(file)).toEqual([]);
    expect(referencesRule([file])).toEqual([]);
  });

  test("a misspelt name is reported where it is used", async () => {
    const findings = await findingsOf(
      API,
      "value: '${blobEndpoint}${deploymentContainerName}'",
      "value: '${blobEndpoints}${deploymentContainerName}'",
    );
    expect(findings).toEqual([
      expect.stringMatching(/api\.bicep:\d+:\d+ \[references\] blobEndpoints is not declared in this file/),
    ]);
  });
});

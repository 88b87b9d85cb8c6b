import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { loadDeclaredAssignments } from "../../devstack/roleAssignments";
import { BUILT_IN_ROLES } from "../../emulators/entra/rbac";

const REPO = resolve(__dirname, "..", "..");

test("the local role-assignment table is read from infra/: the app identity's data-plane grants, on their resource types", async () => {
  const table = await loadDeclaredAssignments(REPO);
  const grants = table.map((a) => `${a.identity} ${a.roleDefinitionId} ${a.scope}`);
  expect(grants).toEqual(
    expect.arrayContaining([
      `appIdentity ${BUILT_IN_ROLES.webPubSubServiceOwner} Microsoft.SignalRService/webPubSub`,
      `appIdentity ${BUILT_IN_ROLES.iotHubDataContributor} Microsoft.Devices/IotHubs`,
      `appIdentity ${BUILT_IN_ROLES.storageTableDataContributor} Microsoft.Storage/storageAccounts`,
    ]),
  );
  // Besides the app: only the deployer (azd's AZURE_PRINCIPAL_ID), on the IoT Hub registry, for the
  // live suite and device registration. Web PubSub's own identity holds no role anywhere.
  expect(table.filter((a) => a.identity !== "appIdentity").map((a) => `${a.identity} ${a.scope}`)).toEqual([
    "principalId Microsoft.Devices/IotHubs",
  ]);
});

test("the local services know each role by the GUID infra/ grants it with", () => {
  const roles = JSON.parse(readFileSync(resolve(REPO, "infra", "app", "roles.json"), "utf8")) as Record<
    string,
    string
  >;
  for (const [name, guid] of Object.entries(BUILT_IN_ROLES)) {
    if (name in roles) expect([name, guid]).toEqual([name, roles[name]]);
  }
});

// The Azure type check (bicep-types-az data) passes on infra/ (infra.test.ts) and fails, at the
// right place, on one-line edits: each kind of finding it can make.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { azureTypesRule, declarations } from "../../infra/check/rules/azureTypes";
import { formatFinding } from "../../infra/check/finding";
import { parseBicep } from "../../infra/check/parser";
import { loadTypeData, typeFilePaths } from "../../infra/check/typeData";
import { declaredTypes, updateTypes } from "../../infra/check/typesUpdate";
import { REPO, mutated, templates } from "./templates";

const TYPES = join(REPO, "infra", "types");
const data = loadTypeData(TYPES);

async function typeFindings(file: string, from: string, to: string): Promise<string[]> {
  return azureTypesRule(await mutated(file, from, to), data).map(formatFinding);
}

test("every declaration of every template is checked, and the data has each one but the listed gaps", async () => {
  const files = await templates();
  const declared = files.flatMap((f) => declarations(f));
  expect(declared.length).toBeGreaterThanOrEqual(20);
  const unknown = declared
    .map((d) => `${d.type}@${d.apiVersion}`)
    .filter((t) => !data.resources.has(t.toLowerCase()));
  expect([...new Set(unknown)]).toEqual(data.source.missing);
  expect(azureTypesRule(files, data).map(formatFinding)).toEqual([]);
});

test("a wrong property name is refused, with the properties that exist", async () => {
  expect(await typeFindings("infra/app/api.bicep", "httpsOnly: true", "httpOnly: true")).toEqual([
    expect.stringMatching(
      /^infra\/app\/api\.bicep:\d+:\d+ \[azure-types\] site \(Microsoft\.Web\/sites@2024-04-01\): properties\.httpOnly is not a property of this type \(it has: .*httpsOnly/,
    ),
  ]);
});

test("an unknown API version is refused, with the versions the data has", async () => {
  expect(
    await typeFindings(
      "infra/app/iothub.bicep",
      "'Microsoft.Devices/IotHubs@2023-06-30'",
      "'Microsoft.Devices/IotHubs@2099-01-01'",
    ),
  ).toEqual([
    expect.stringContaining(
      "iotHub (Microsoft.Devices/IotHubs@2099-01-01): not in Azure's type data: known API versions here: 2023-06-30",
    ),
  ]);
});

test("writing a read-only property is refused", async () => {
  expect(
    await typeFindings("infra/app/webpubsub.bicep", "disableAadAuth: false", "hostName: 'relay'"),
  ).toEqual([
    expect.stringContaining(
      "webPubSub (Microsoft.SignalRService/webPubSub@2024-03-01): properties.hostName is read-only",
    ),
  ]);
});

test("a value the data does not allow is refused", async () => {
  expect(await typeFindings("infra/app/api.bicep", "type: 'UserAssigned'", "type: 'UserAsigned'")).toEqual([
    expect.stringMatching(
      /site \(Microsoft\.Web\/sites@2024-04-01\): identity\.type: "UserAsigned" is not one of 'SystemAssigned', 'UserAssigned'/,
    ),
  ]);
});

test("each @allowed value of a parameter is checked against the data too", async () => {
  const source = [
    "@allowed(['UserAssigned', 'Managed'])",
    "param identityType string",
    "resource site 'Microsoft.Web/sites@2024-04-01' = {",
    "  name: 'x'",
    "  location: 'westeurope'",
    "  identity: { type: identityType }",
    "}",
  ].join("\n");
  const file = await parseBicep("snippet.bicep", source);
  expect(azureTypesRule([file], data).map(formatFinding)).toEqual([
    expect.stringMatching(
      /^snippet\.bicep:6:\d+ .*identity\.type: @allowed value "Managed" of param identityType is not one of/,
    ),
  ]);
});

test("a missing required property is refused", async () => {
  expect(await typeFindings("infra/app/webpubsub.bicep", "    principalId: principalId\n", "")).toEqual([
    expect.stringContaining(
      "serviceOwner (Microsoft.Authorization/roleAssignments@2022-04-01): properties.principalId is required",
    ),
  ]);
});

test("a discriminated type is checked by its variant (sites/config by name)", async () => {
  expect(await typeFindings("infra/app/api.bicep", "name: 'appsettings'", "name: 'appsetings'")).toEqual([
    expect.stringMatching(
      /appSettings \(Microsoft\.Web\/sites\/config@2024-04-01\): name: 'appsetings' is not one of .*appsettings/,
    ),
  ]);
});

describe("npm run infra:types-update", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "types-update-"));
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  test("copies from a checkout exactly the files the templates declare, and lists what it lacks", async () => {
    const repo = join(root, "repo");
    const checkout = join(root, "bicep-types-az");
    for (const f of ["infra/main.bicep", "infra/app/iothub.bicep"]) {
      await mkdir(dirname(join(repo, f)), { recursive: true });
      await writeFile(join(repo, f), await readFile(join(REPO, f)));
    }
    const iothub = "generated/iothub/microsoft.devices/2023-06-30/types.json";
    // The same namespace and version in another group, without the resource: must not be taken.
    const decoy = "generated/iothub_1/microsoft.devices/2023-06-30/types.json";
    for (const [path, text] of [
      [iothub, await readFile(join(TYPES, iothub), "utf8")],
      [decoy, "[]"],
      ["generated/web/microsoft.web/2024-04-01/types.json", "[]"],
      ["LICENSE", "MIT"],
    ] as const) {
      await mkdir(dirname(join(checkout, path)), { recursive: true });
      await writeFile(join(checkout, path), text);
    }
    const declared = [...(await declaredTypes(repo)).values()];
    const { copied, source } = await updateTypes(repo, checkout);
    expect(copied).toEqual([iothub]);
    expect(typeFilePaths(join(repo, "infra", "types"))).toEqual([iothub]);
    expect(source.missing).toEqual(
      declared.filter((t) => t !== "Microsoft.Devices/IotHubs@2023-06-30").sort(),
    );
    expect(
      loadTypeData(join(repo, "infra", "types")).resources.has("microsoft.devices/iothubs@2023-06-30"),
    ).toBe(true);
  });

  test("refuses a folder that is not a bicep-types-az checkout", async () => {
    await expect(updateTypes(REPO, root)).rejects.toThrow("no generated/ folder");
  });
});

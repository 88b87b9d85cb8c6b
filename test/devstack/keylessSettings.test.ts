/**
 * The keyless stack's control-plane settings are the ones infra/app/api.bicep writes: the same
 * names, none of them a key, and they load in azure mode. The local extras are the authority (the
 * Azure default is Microsoft's) and the identity endpoint the platform sets.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PLATFORM_SETTINGS, loadConfig } from "../../shared/config";
import { deployed } from "../../infra/check/resources";
import { properties, propertyKey, propertyValue, stringValue } from "../../infra/check/syntax";
import { templates } from "../infra/templates";
import { type KeylessStack, startKeyless, tallyTableRequest } from "../../devstack/keyless";
import { REPO } from "../e2e/support";

jest.setTimeout(60_000);

let dir: string;
let keyless: KeylessStack;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyless-settings-"));
  keyless = await startKeyless({ host: "127.0.0.1", stateDir: dir, repoRoot: REPO });
});

afterAll(async () => {
  await keyless?.close();
  await rm(dir, { recursive: true, force: true });
});

async function bicepAppSettings(): Promise<string[]> {
  for (const file of await templates()) {
    for (const r of deployed(file.root, "Microsoft.Web/sites/config")) {
      if (stringValue(propertyValue(r.body, "name")) !== "appsettings") continue;
      return properties(propertyValue(r.body, "properties")!).map((p) => propertyKey(p)!);
    }
  }
  throw new Error("no appsettings resource in infra/");
}

const settings = () =>
  keyless.controlPlaneSettings({
    tableEndpoint: "https://127.0.0.1:10002/devstoreaccount1",
    webPubSubEndpoint: "https://127.0.0.1:8080",
    iotHubHostName: "127.0.0.1:8443",
    sasResource: "localhost",
  });

test("the names are api.bicep's app settings (platform ones aside), plus the local authority and identity endpoint", async () => {
  const bicep = (await bicepAppSettings()).filter((n) => !PLATFORM_SETTINGS.includes(n));
  // SERVICE_SAS_POLICIES is a Key Vault reference in Azure, empty without one: keyless has none.
  const expected = bicep.filter((n) => n !== "SERVICE_SAS_POLICIES");
  const local = ["ENTRA_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"];
  expect(Object.keys(settings()).sort()).toEqual([...expected, ...local].sort());
});

test("no key or connection string, and the settings load in azure mode", () => {
  const s = settings();
  expect(Object.keys(s).filter((n) => /CONNECTION_STRING|SAS_POLICIES|SECRET|KEY/.test(n))).toEqual([]);
  expect(Object.values(s).join("\n")).not.toMatch(/AccountKey|AccessKey|SharedAccessKey/);
  const config = loadConfig(s);
  expect(config.mode).toBe("azure");
  expect(config.iotHub).toEqual({ methodName: "deviceStream", hostName: "127.0.0.1:8443" });
});

test("IOTHUB_HOST_NAME takes a port for the emulator, never a path or a bad port", () => {
  for (const bad of ["127.0.0.1:8443/x", "hub:99999", "hub:", "https://hub"]) {
    expect(() => loadConfig({ ...settings(), IOTHUB_HOST_NAME: bad })).toThrow(/IOTHUB_HOST_NAME/);
  }
});

test("table requests are told apart by how they are signed", () => {
  const tally = { bearer: 0, keySigned: 0 };
  const req = (authorization: string | undefined, url = "/devstoreaccount1/streams") =>
    ({ headers: authorization ? { authorization } : {}, url }) as Parameters<typeof tallyTableRequest>[1];
  tallyTableRequest(tally, req("Bearer abc"));
  tallyTableRequest(tally, req("SharedKey devstoreaccount1:sig"));
  tallyTableRequest(tally, req("SharedKeyLite devstoreaccount1:sig"));
  tallyTableRequest(tally, req(undefined, "/devstoreaccount1/streams?sv=1&sig=abc"));
  expect(tally).toEqual({ bearer: 1, keySigned: 3 });
});

/** The CLI's credential against the local Entra ID: ClientSecretCredential without instance discovery. */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ClientSecretCredential, DefaultAzureCredential } from "@azure/identity";
import { cliCredential } from "../../client/cli/entra";
import { type Tenant, startTenant } from "../emulators/entra/tenant";

jest.setTimeout(60_000);
let tenant: Tenant;
beforeAll(async () => {
  tenant = await startTenant();
});
afterAll(async () => {
  await tenant.close();
});

test("a local authority gets a ClientSecretCredential that works offline (no instance discovery), trusting the given CA", async () => {
  const caFile = join(tenant.dir, "entra-ca.crt");
  await writeFile(caFile, tenant.tls.caPem);
  const settings: Record<string, string> = {
    AZURE_AUTHORITY_HOST: tenant.entra.authorityHost,
    AZURE_TENANT_ID: tenant.entra.tenantId,
    AZURE_CLIENT_ID: tenant.reader.clientId,
    AZURE_CLIENT_SECRET: tenant.reader.secret!,
    DEVICESTREAM_ENTRA_CA_FILE: caFile,
  };
  const credential = await cliCredential((n) => settings[n]);
  expect(credential).toBeInstanceOf(ClientSecretCredential);
  const before = tenant.entra.hits.clientCredentials;
  expect((await credential.getToken("api://device-streams/.default"))?.token).toBeTruthy();
  expect(tenant.entra.hits.clientCredentials).toBe(before + 1);
});

test("a local authority without client credentials is a usage error naming what is missing", async () => {
  await expect(
    cliCredential((n) => (n === "AZURE_AUTHORITY_HOST" ? tenant.entra.authorityHost : undefined)),
  ).rejects.toThrow(/AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET/);
});

test("no authority, or Microsoft's, keeps DefaultAzureCredential", async () => {
  expect(await cliCredential(() => undefined)).toBeInstanceOf(DefaultAzureCredential);
  expect(
    await cliCredential((n) =>
      n === "AZURE_AUTHORITY_HOST" ? "https://login.microsoftonline.com" : undefined,
    ),
  ).toBeInstanceOf(DefaultAzureCredential);
});

describe("without the optional @azure/identity (an installed client, docs/decisions.md §3)", () => {
  function credentialWithout(error: Error & { code?: string }) {
    let load!: typeof cliCredential;
    jest.isolateModules(() => {
      jest.doMock("@azure/identity", () => {
        throw error;
      });
      ({ cliCredential: load } =
        jest.requireActual<typeof import("../../client/cli/entra")>("../../client/cli/entra"));
    });
    return load(() => undefined);
  }

  // The built CLI loads it with a native import() (ERR_MODULE_NOT_FOUND); CommonJS says MODULE_NOT_FOUND.
  test.each([
    ["ERR_MODULE_NOT_FOUND", "Cannot find package '@azure/identity' imported from /x/client/cli/entra.js"],
    ["MODULE_NOT_FOUND", "Cannot find module '@azure/identity'"],
  ])("the package missing (%s) is a usage error saying how to install it", async (code, message) => {
    const missing = Object.assign(new Error(message), { code });
    await expect(credentialWithout(missing)).rejects.toMatchObject({
      name: "UsageError",
      message: expect.stringContaining("npm install -g @azure/identity"),
    });
  });

  test("a module missing inside it keeps its own error", async () => {
    const inner = Object.assign(new Error("Cannot find module '@azure/msal-node'"), {
      code: "MODULE_NOT_FOUND",
    });
    await expect(credentialWithout(inner)).rejects.toBe(inner);
  });
});

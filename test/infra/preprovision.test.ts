// The azd preprovision hook, run by sh with a fake `az` on PATH that answers from fixed region
// lists (and records what it was asked), so each refusal and each "not checked" path is shown.
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO } from "./templates";

const HOOK = join(REPO, "infra", "hooks", "preprovision.sh");

let bin: string;
beforeEach(async () => {
  bin = await mkdtemp(join(tmpdir(), "preprovision-"));
  // Only what the hook needs: no real `az` can be found on this PATH.
  for (const tool of ["tr", "grep"])
    await symlink(`/usr/bin/${tool}`, join(bin, tool)).catch(() => symlink(`/bin/${tool}`, join(bin, tool)));
});
afterEach(() => rm(bin, { recursive: true, force: true }));

/** A fake az: Flex Consumption in eastus/westeurope, Web PubSub in "East US"/"West Europe"/"Sweden Central", IoT Hub in "East US"/"Sweden Central". */
async function fakeAz(options: { failing?: boolean } = {}): Promise<void> {
  const script = `#!/bin/sh
echo "$*" >> "${bin}/az.calls"
${options.failing ? 'echo "ERROR: Please run az login" >&2; exit 1' : ""}
case "$*" in
  *list-flexconsumption-locations*) printf 'eastus\\nwesteurope\\n' ;;
  *Microsoft.SignalRService*) printf 'East US\\nWest Europe\\nSweden Central\\n' ;;
  *Microsoft.Devices*) printf 'East US\\nSweden Central\\n' ;;
  *) exit 2 ;;
esac
`;
  await writeFile(join(bin, "az"), script);
  await chmod(join(bin, "az"), 0o755);
}

function hook(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile("/bin/sh", [HOOK], { env: { PATH: bin, ...env } }, (err, _stdout, stderr) =>
      resolve({ code: err ? Number(err.code) : 0, stderr }),
    );
  });
}

test("a region with all three services passes", async () => {
  await fakeAz();
  const result = await hook({ AZURE_LOCATION: "eastus" });
  expect(result).toEqual({
    code: 0,
    stderr: expect.stringContaining("region 'eastus' offers Flex Consumption, Web PubSub and IoT Hub"),
  });
  expect((await readFile(join(bin, "az.calls"), "utf8")).trim().split("\n")).toEqual([
    expect.stringContaining("functionapp list-flexconsumption-locations"),
    expect.stringContaining("--namespace Microsoft.SignalRService"),
    expect.stringContaining("--namespace Microsoft.Devices"),
  ]);
});

test("a region without IoT Hub is refused with what it lacks and what to do", async () => {
  await fakeAz();
  const result = await hook({ AZURE_LOCATION: "West Europe" });
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("region 'westeurope' does not offer: IoT Hub.");
  expect(result.stderr).toContain("azd env set AZURE_LOCATION <region>");
});

test("a region without Flex Consumption is refused", async () => {
  await fakeAz();
  const result = await hook({ AZURE_LOCATION: "swedencentral" });
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("region 'swedencentral' does not offer: Flex Consumption.");
});

test("with an existing hub, the region needs no IoT Hub", async () => {
  await fakeAz();
  const result = await hook({
    AZURE_LOCATION: "westeurope",
    EXISTING_IOTHUB_NAME: "my-hub",
    EXISTING_IOTHUB_RESOURCE_GROUP: "rg-iot",
  });
  expect(result.code).toBe(0);
  expect(await readFile(join(bin, "az.calls"), "utf8")).not.toContain("Microsoft.Devices");
});

test("an existing hub without its resource group is refused before anything else", async () => {
  await fakeAz();
  const result = await hook({ AZURE_LOCATION: "eastus", EXISTING_IOTHUB_NAME: "my-hub" });
  expect(result.code).toBe(1);
  expect(result.stderr).toContain(
    "EXISTING_IOTHUB_NAME is 'my-hub' but EXISTING_IOTHUB_RESOURCE_GROUP is empty.",
  );
  expect(result.stderr).toContain("azd env set EXISTING_IOTHUB_RESOURCE_GROUP");
});

test("without az the region is not checked, and it says so", async () => {
  const result = await hook({ AZURE_LOCATION: "eastus" });
  expect(result).toEqual({
    code: 0,
    stderr: expect.stringContaining("Azure CLI (az) not found: region 'eastus' not checked"),
  });
});

test("when az cannot answer (not logged in), it says which service went unchecked and goes on", async () => {
  await fakeAz({ failing: true });
  const result = await hook({ AZURE_LOCATION: "eastus" });
  expect(result.code).toBe(0);
  expect(result.stderr).toContain("could not list the regions of Flex Consumption (is 'az login' done?)");
});

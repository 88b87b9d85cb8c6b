// Unit counts per SKU: our table of what ARM accepts, fed each boundary, and the rule that checks
// main.bicep can only send accepted combinations, shown to fail on one-line edits.
import { armAcceptsUnits, skuUnitsRule } from "../../infra/check/rules/skuUnits";
import { formatFinding } from "../../infra/check/finding";
import { mutated, templates } from "./templates";

const MAIN = "infra/main.bicep";

describe("what ARM accepts", () => {
  it.each([
    ["Free_F1", 1, true],
    ["Free_F1", 2, false],
    ["Free_F1", 0, false],
    ["Standard_S1", 0, false],
    ["Standard_S1", 1, true],
    ["Standard_S1", 10, true],
    ["Standard_S1", 11, false],
    ["Standard_S1", 15, false],
    ["Standard_S1", 20, true],
    ["Standard_S1", 25, false],
    ["Standard_S1", 100, true],
    ["Standard_S1", 110, false],
    ["Standard_S1", 200, false],
    ["Premium_P1", 10, true],
    ["Premium_P1", 30, true],
    ["Premium_P1", 101, false],
    ["Premium_P2", 1, false],
    ["Premium_P2", 99, false],
    ["Premium_P2", 100, true],
    ["Premium_P2", 150, false],
    ["Premium_P2", 1000, true],
    ["Premium_P2", 1100, false],
    ["Basic_B1", 1, false],
  ])("Web PubSub %s with %d units: %s", (sku, units, ok) => {
    expect(armAcceptsUnits("webPubSub", sku, units)).toBe(ok);
  });

  it.each([
    ["F1", 1, true],
    ["F1", 2, false],
    ["S1", 0, false],
    ["S1", 1, true],
    ["S1", 200, true],
    ["S1", 201, false],
    ["S2", 200, true],
    ["S2", 201, false],
    ["S3", 1, true],
    ["S3", 10, true],
    ["S3", 11, false],
  ])("IoT Hub %s with %d units: %s", (sku, units, ok) => {
    expect(armAcceptsUnits("iotHub", sku, units)).toBe(ok);
  });
});

describe("main.bicep sends only accepted combinations", () => {
  const check = async (from: string, to: string) =>
    skuUnitsRule((await mutated(MAIN, from, to))[0]!).map(formatFinding);

  it("passes as it is", async () => {
    const [main] = await templates();
    expect(skuUnitsRule(main!)).toEqual([]);
  });

  it("refuses P2 fed from the S1/P1 parameter (the old default: P2 with 1 unit)", async () => {
    expect(
      await check(
        "webPubSubSku == 'Premium_P2' ? webPubSubP2Units",
        "webPubSubSku == 'Premium_P2' ? webPubSubUnits",
      ),
    ).toEqual([
      expect.stringMatching(
        /\[sku-units\] webPubSub: Premium_P2 with 1, 2, 3, 4, 5 \.\.\. units: ARM refuses it$/,
      ),
    ]);
  });

  it("refuses a unit count ARM does not take in a per-SKU list", async () => {
    expect(
      await check("  90\n  100\n])\nparam webPubSubUnits", "  95\n  100\n])\nparam webPubSubUnits"),
    ).toEqual([
      expect.stringContaining("Standard_S1 with 95 units: ARM refuses it"),
      expect.stringContaining("Premium_P1 with 95 units: ARM refuses it"),
    ]);
  });

  it("refuses Free_F1 or F1 with more than one unit", async () => {
    expect(
      await check("webPubSubSku == 'Free_F1' ? 1 :", "webPubSubSku == 'Free_F1' ? webPubSubUnits :"),
    ).toEqual([expect.stringContaining("webPubSub: Free_F1 with 2, 3, 4, 5, 6 ... units: ARM refuses it")]);
    expect(await check("iotHubSku == 'F1' ? 1 :", "iotHubSku == 'F1' ? iotHubUnits :")).toEqual([
      expect.stringContaining("iotHub: F1 with 2, 3, 4, 5, 6 ... units: ARM refuses it"),
    ]);
  });

  it("refuses S3 above 10 units", async () => {
    expect(await check("@maxValue(10)\nparam iotHubS3Units", "@maxValue(11)\nparam iotHubS3Units")).toEqual([
      expect.stringContaining("iotHub: S3 with 11 units: ARM refuses it"),
    ]);
  });

  it("refuses a module fed the raw parameter instead of the per-SKU choice", async () => {
    expect(await check("    units: iotHubCapacity\n", "    units: iotHubUnits\n")).toEqual([
      expect.stringContaining("iotHub: module iotHub must get units: iotHubCapacity"),
    ]);
  });
});

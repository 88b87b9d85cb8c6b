import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PLATFORM_SETTINGS, configSettings, loadConfig } from "../../shared/config";

const sample = JSON.parse(readFileSync(join(__dirname, "../../local.settings.sample.json"), "utf8")) as {
  Values: Record<string, string>;
};

describe("local.settings.sample.json", () => {
  it("lists every setting the config schema reads, and nothing unknown", () => {
    const known = new Set([...configSettings().map((s) => s.name as string), ...PLATFORM_SETTINGS]);
    expect(Object.keys(sample.Values).filter((k) => !known.has(k))).toEqual([]);
    expect(
      configSettings()
        .filter((s) => !(s.name in sample.Values))
        .map((s) => s.name),
    ).toEqual([]);
  });

  it("is a valid local configuration as it stands", () => {
    const config = loadConfig(sample.Values);
    expect(config.mode).toBe("local");
    expect(config.auth.sas.policies.map((p) => p.name)).toEqual(["service"]);
  });
});

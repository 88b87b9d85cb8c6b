import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isLabel, labelFor, parseHost } from "../../client/gateway/hostname";
import { junkGenerator } from "../helpers/random";

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

describe("gateway host labels", () => {
  it("are one DNS label: [a-z0-9-], at most 63, no xn--, no hyphen at either end", () => {
    const label = labelFor({ deviceId: "Demo-Device-01", streamName: "web" });
    expect(label).toMatch(DNS_LABEL);
    expect(label.startsWith("xn--")).toBe(false);
    expect(isLabel(label)).toBe(true);
    expect(labelFor({ deviceId: "Demo-Device-01", streamName: "web" })).toBe(label);
  });

  it("tell apart IDs that differ only by case, and the module and stream name", () => {
    const labels = [
      labelFor({ deviceId: "Demo-Device-01", streamName: "web" }),
      labelFor({ deviceId: "demo-device-01", streamName: "web" }),
      labelFor({ deviceId: "DEMO-DEVICE-01", streamName: "web" }),
      labelFor({ deviceId: "Demo-Device-01", streamName: "Web" }),
      labelFor({ deviceId: "Demo-Device-01", streamName: "ssh" }),
      labelFor({ deviceId: "Demo-Device-01", moduleId: "web", streamName: "web" }),
      // Field boundaries are part of what is hashed: no concatenation of fields collides.
      labelFor({ deviceId: "Demo-Device-01web", streamName: "" }),
      labelFor({ deviceId: 'a","b', streamName: "c" }),
      labelFor({ deviceId: "a", moduleId: "b", streamName: "c" }),
    ];
    expect(new Set(labels).size).toBe(labels.length);
  });

  it("are the ones docs/gateway.md shows for the two demo devices", () => {
    const doc = readFileSync(join(__dirname, "..", "..", "docs", "gateway.md"), "utf8");
    for (const deviceId of ["Demo-Device-01", "demo-device-01"]) {
      const row = new RegExp(`\\| \`${deviceId}\` \`web\` \\| \`(\\w+)\\.localhost:8090\``).exec(doc);
      expect({ deviceId, label: row?.[1] }).toEqual({
        deviceId,
        label: labelFor({ deviceId, streamName: "web" }),
      });
    }
  });

  it("fuzz: 5000 random targets (unicode included) all give distinct well-formed labels", () => {
    const junk = junkGenerator(1616);
    const targets = new Set<string>();
    const labels = new Set<string>();
    const malformed: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const target = {
        deviceId: junk.string(128),
        ...(junk.random() < 0.3 ? { moduleId: junk.string(20) } : {}),
        streamName: junk.string(64),
      };
      const label = labelFor(target);
      if (!DNS_LABEL.test(label) || label.startsWith("xn--")) malformed.push(label);
      targets.add(JSON.stringify(target));
      labels.add(label);
    }
    expect(malformed).toEqual([]);
    expect(targets.size).toBeGreaterThan(4000);
    expect(labels.size).toBe(targets.size);
  });
});

describe("parseHost", () => {
  const label = labelFor({ deviceId: "Demo-Device-01", streamName: "web" });

  it("gives the label of <label>.<baseDomain>, whatever the port and letter case", () => {
    expect(parseHost(`${label}.localhost`, "localhost")).toBe(label);
    expect(parseHost(`${label}.localhost:8080`, "localhost")).toBe(label);
    expect(parseHost(`${label.toUpperCase()}.LocalHost:443`, "localhost")).toBe(label);
    expect(parseHost(`${label}.devices.example.com`, "Devices.Example.com.")).toBe(label);
  });

  it("gives nothing (404) for any other host", () => {
    for (const host of [
      "localhost",
      "localhost:8080",
      `${label}.localhost.`,
      `${label}.example.com`,
      `x.${label}.localhost`,
      `${label}localhost`,
      `${label}.evil-localhost`,
      "demo-device-01.localhost",
      "d.localhost",
      `${label}x.localhost`,
      `${label}.localhost:`,
      `${label}.localhost:99999x`,
      `${label}.localhost:8080:1`,
      "[::1]:8080",
      "127.0.0.1",
      "",
      `${label}.localhost/`,
      `user@${label}.localhost`,
      `${label}.localhost`.padStart(300, "a"),
    ]) {
      expect({ host, label: parseHost(host, "localhost") }).toEqual({ host, label: undefined });
    }
    expect(parseHost(`${label}.localhost`, "")).toBeUndefined();
  });

  it("fuzz: never throws on garbage", () => {
    const junk = junkGenerator(404);
    const bad: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const host = junk.pick(["", `${label}.`]) + junk.string(300) + junk.pick(["", ".localhost", ":80"]);
      const result = parseHost(host, junk.pick(["localhost", junk.string(20)]));
      if (result !== undefined && !isLabel(result)) bad.push(host);
    }
    expect(bad).toEqual([]);
    expect(parseHost(undefined as unknown as string, "localhost")).toBeUndefined();
  });
});

// The templates against the code they deploy: the config catalogue (shared/config.ts),
// the host's route prefix (host.json) and the relay-events route.
import { MAX_EVENT_BYTES } from "../../shared/api/relayEventsApi";
import { createBodyLimit } from "../../shared/api/streamsApi";
import { authSettingsSchema } from "../../shared/auth/config";
import { configSettings, loadConfig } from "../../shared/config";
import { ROUTE_PREFIX } from "../../shared/http/routeTypes";
import { checkInfra, routePrefix } from "../../infra/check";
import { formatFinding } from "../../infra/check/finding";
import { deployed } from "../../infra/check/resources";
import {
  literalValue,
  parameterDefault,
  parameters,
  propertyAt,
  propertyValue,
  stringValue,
} from "../../infra/check/syntax";
import { localEnv } from "../helpers/controlPlane";
import { EXPECTATIONS, REPO, templates } from "./templates";

test("every rule passes on infra/, cross-checked with shared/config.ts and the relay route", async () => {
  const findings = await checkInfra(REPO, EXPECTATIONS);
  expect(findings.map(formatFinding)).toEqual([]);
});

test("the cross-check has something to check: azure mode requires settings", () => {
  expect(configSettings().filter((s) => s.requiredIn.includes("azure")).length).toBeGreaterThan(0);
});

test("the event-handler path uses the prefix the code registers routes under", () => {
  expect(routePrefix(REPO)).toBe(ROUTE_PREFIX);
});

test("the function app runs Node 22 unless told otherwise", async () => {
  const [main] = await templates();
  const nodeVersion = parameters(main!.root).find((p) => p.name === "nodeVersion");
  expect(stringValue(parameterDefault(nodeVersion!.node))).toBe("22");
});

test("the default entraRoles is a valid ENTRA_ROLES for the control plane", async () => {
  const [main] = await templates();
  const entraRoles = parameters(main!.root).find((p) => p.name === "entraRoles");
  const value = literalValue(parameterDefault(entraRoles!.node));
  expect(Array.isArray(value) && value.length).toBeGreaterThan(0);
  const parsed = authSettingsSchema.safeParse({ ENTRA_ROLES: JSON.stringify(value) });
  expect(parsed.error?.issues ?? []).toEqual([]);
});

/** The largest STREAMS_MAX_DATA_BYTES the config schema accepts. */
const LARGEST_DATA_CAP = 32_768;

test("the host's body limit backs up the routes' own limits and is above the largest of them", async () => {
  const settings = (await templates())
    .flatMap((file) => deployed(file.root, "Microsoft.Web/sites/config"))
    .filter((r) => stringValue(propertyValue(r.body, "name")) === "appsettings")
    .map((r) => propertyAt(r.body, "properties", "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"));
  const limit = Number(stringValue(settings.find((v) => v !== undefined)));
  expect(Number.isInteger(limit)).toBe(true);
  expect(limit).toBeGreaterThanOrEqual(MAX_EVENT_BYTES);
  expect(limit).toBeGreaterThanOrEqual(createBodyLimit(LARGEST_DATA_CAP));
  // Whoever raises the data cap's bound must look at this backstop again.
  const env = (cap: number) =>
    localEnv("UseDevelopmentStorage=true", { STREAMS_MAX_DATA_BYTES: String(cap) });
  expect(loadConfig(env(LARGEST_DATA_CAP)).streams.maxDataBytes).toBe(LARGEST_DATA_CAP);
  expect(() => loadConfig(env(LARGEST_DATA_CAP + 1))).toThrow(/STREAMS_MAX_DATA_BYTES/);
  // Far below the host's 100 MB default, which is what it is there to replace.
  expect(limit).toBeLessThan(100 * 1024 * 1024);
});

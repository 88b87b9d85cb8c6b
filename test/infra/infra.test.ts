// The templates against the code they deploy: the config catalogue (shared/config.ts),
// the host's route prefix (host.json) and the relay-events route.
import { authSettingsSchema } from "../../shared/auth/config";
import { configSettings } from "../../shared/config";
import { ROUTE_PREFIX } from "../../shared/http/routeTypes";
import { checkInfra, routePrefix } from "../../infra/check";
import { formatFinding } from "../../infra/check/finding";
import { literalValue, parameterDefault, parameters, stringValue } from "../../infra/check/syntax";
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

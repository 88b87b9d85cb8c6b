// Test helpers: the real templates, and single-edit mutations of them, so each rule is
// shown to fail on the very files it passes.
import { RELAY_EVENT_SUBSCRIPTION } from "../../shared/api/relayEventsApi";
import { join } from "node:path";
import { PLATFORM_SETTINGS, configSettings } from "../../shared/config";
import { createRouteTable } from "../../shared/routes";
import { checkFiles, inputsFor, type InfraExpectations, type Inputs } from "../../infra/check";
import { formatFinding } from "../../infra/check/finding";
import { loadBicep, templatePaths } from "../../infra/check/files";
import { parseBicep, type BicepFile } from "../../infra/check/parser";

export const REPO = join(__dirname, "../..");
const INFRA = join(REPO, "infra");

/** The route the control plane registers for Web PubSub's events, read from its route table. */
function relayEventsRoute(): string {
  // The table only calls getServices when a request arrives, so building it here has no side effects.
  const table = createRouteTable(() => Promise.reject(new Error("no services in infra checks")));
  const route = table.http.find((r) => r.name === "relayEvents");
  if (!route) throw new Error("shared/routes.ts registers no route named relayEvents");
  return route.route;
}

/** What the templates must agree with: the code's settings catalogue and relay-events route. */
export const EXPECTATIONS: InfraExpectations = {
  relayEventsRoute: relayEventsRoute(),
  relayEventsSystemEvents: RELAY_EVENT_SUBSCRIPTION.systemEvents,
  settings: configSettings(),
  platform: PLATFORM_SETTINGS,
};

export const inputs = (): Inputs => inputsFor(REPO, EXPECTATIONS);

let parsed: Promise<BicepFile[]> | undefined;

/** All templates, main.bicep first (as checkInfra orders them); parsed once, then copied. */
export async function templates(): Promise<BicepFile[]> {
  parsed ??= loadBicep(REPO, templatePaths(INFRA));
  return [...(await parsed)];
}

/** The templates with one exact, unique text edit in one file. */
export async function mutated(file: string, from: string, to: string): Promise<BicepFile[]> {
  const files = await templates();
  const index = files.findIndex((f) => f.path === file);
  const target = files[index];
  if (!target) throw new Error(`no template ${file}`);
  if (target.source.split(from).length !== 2)
    throw new Error(`${file}: ${JSON.stringify(from)} must occur exactly once`);
  // A replacer function, so `$` in Bicep interpolations is never read as a replacement pattern.
  files[index] = await parseBicep(
    file,
    target.source.replace(from, () => to),
  );
  return files;
}

/** Formatted findings of every rule, with the real inputs unless overridden. */
export async function check(files: Promise<BicepFile[]>, overrides: Partial<Inputs> = {}): Promise<string[]> {
  return checkFiles(await files, { ...inputs(), ...overrides }).map(formatFinding);
}

/**
 * A function app as the Functions worker sees it, turned into the route table the local host
 * serves: `npm start` loads the app's entry point (package.json `main`) through the
 * `@azure/functions-core` stand-in, so it serves what the app registers in Azure, nothing else.
 */
import type { HttpMethod } from "@azure/functions";
import type { HttpRouteDef, RouteTable, TimerDef } from "../shared/http/routeTypes";
import { type RegisteredFunction, loadFunctionsApp, triggerOf } from "./functionsCore";

/**
 * The period of an NCRONTAB schedule (six fields, seconds first) that fires every N seconds or
 * minutes; the local host runs timers on intervals. Other schedules are refused at start-up
 * rather than run at the wrong times.
 */
export function scheduleIntervalMs(schedule: string): number {
  const fields = schedule.trim().split(/\s+/);
  const everyN = (field: string | undefined) => (field === "*" ? 1 : /^\*\/(\d+)$/.exec(field ?? "")?.[1]);
  if (fields.length === 6 && fields.slice(2).every((f) => f === "*")) {
    const seconds = everyN(fields[0]);
    if (seconds !== undefined && fields[1] === "*") return Number(seconds) * 1000;
    const minutes = everyN(fields[1]);
    if (fields[0] === "0" && minutes !== undefined) return Number(minutes) * 60_000;
  }
  throw new RangeError(
    `timer schedule '${schedule}': the local host runs only '*/N * * * * *' and '0 */N * * * *'`,
  );
}

type Handler = (...args: unknown[]) => unknown;

/**
 * The route table of registered functions. `beforeInvoke` runs before every handler: the local
 * stack uses it to hand the app its settings as environment variables, as the Functions host does.
 */
export function routeTableOf(functions: readonly RegisteredFunction[], beforeInvoke: () => void): RouteTable {
  const withSettings =
    (handler: Handler): Handler =>
    (...args) => {
      beforeInvoke();
      return handler(...args);
    };
  const table: RouteTable = { http: [], timers: [] };
  for (const fn of functions) {
    const trigger = triggerOf(fn);
    if (trigger.type === "httpTrigger") {
      table.http.push({
        name: fn.name,
        methods: (trigger.methods ?? ["GET", "POST"]) as HttpMethod[],
        route: trigger.route ?? fn.name,
        handler: withSettings(fn.handler) as HttpRouteDef["handler"],
      });
    } else if (trigger.type === "timerTrigger" && typeof trigger.schedule === "string") {
      table.timers.push({
        name: fn.name,
        schedule: trigger.schedule,
        intervalMs: scheduleIntervalMs(trigger.schedule),
        handler: withSettings(fn.handler) as TimerDef["handler"],
      });
    } else {
      throw new Error(`function '${fn.name}': the local host does not run ${trigger.type} triggers`);
    }
  }
  return table;
}

/** Copies the settings into process.env, where the app reads them (skipping unset ones). */
export function applySettings(env: NodeJS.ProcessEnv): void {
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && process.env[key] !== value) process.env[key] = value;
  }
}

/** Loads the function app in `appDir` and serves it with the settings `env()` returns. */
export function loadAppRouteTable(appDir: string, env: () => NodeJS.ProcessEnv): RouteTable {
  return routeTableOf(loadFunctionsApp(appDir), () => applySettings(env()));
}

/**
 * A stand-in for `@azure/functions-core`, the module the Azure Functions Node.js worker provides
 * to the app at run time (it is not on npm). `@azure/functions` v4 `require`s it on the first
 * `app.http`/`app.timer` call and, when it is missing, switches to "test mode" and skips
 * registration. With this stand-in in place, loading an app's entry point (package.json `main`)
 * records exactly what it would register with the worker: function names, bindings and handlers.
 *
 * `npm start` serves the repository's app through it, and test/deploy loads the packed artifact
 * through it, so both run what Azure would register. This file imports only Node built-ins: the
 * artifact test bundles it into a directory with no node_modules.
 */
import { existsSync, readFileSync } from "node:fs";
import Module from "node:module";
import { dirname, join, resolve, sep } from "node:path";

/** One binding as `@azure/functions` hands it to the worker (`toCoreFunctionMetadata`). */
export interface CoreBinding {
  type: string;
  direction: string;
  authLevel?: string;
  methods?: string[];
  route?: string;
  schedule?: string;
  [key: string]: unknown;
}

export interface RegisteredFunction {
  name: string;
  bindings: Record<string, CoreBinding>;
  handler: (...args: unknown[]) => unknown;
}

/** What the worker needs to know of a function, in a form tests can compare. */
export interface FunctionSummary {
  name: string;
  trigger: string;
  authLevel?: string;
  methods?: string[];
  route?: string;
  schedule?: string;
}

export const CORE_MODULE = "@azure/functions-core";

let recorder: RegisteredFunction[] | undefined;

/** The subset of the worker's core API that `@azure/functions` 4.x calls while registering. */
const coreApi = {
  version: "stand-in",
  setProgrammingModel(_model: unknown): void {},
  getProgrammingModel(): undefined {
    return undefined;
  },
  registerHook(): { dispose(): void } {
    return { dispose() {} };
  },
  /**
   * The worker's system log. `@azure/functions` reads its presence as "host v4.28 or later", the
   * hosts that support HTTP streaming (`app.setup({ enableHttpStream: true })` refuses otherwise):
   * Azure runs such a host, so the stand-in is one. Debug chatter is dropped.
   */
  log(level: string, _category: string, message: string): void {
    if (level === "warning" || level === "error" || level === "critical") console.error(message);
  },
  registerFunction(metadata: { name: string; bindings: Record<string, CoreBinding> }, handler: never) {
    if (!recorder) throw new Error(`${CORE_MODULE} stand-in: a function registered outside loadFunctionsApp`);
    recorder.push({ name: metadata.name, bindings: metadata.bindings, handler });
    return { dispose() {} };
  },
};

let installed = false;
const VIRTUAL_PATH = join(sep, "__functions-core-stand-in__", "index.js");

/**
 * Makes `require("@azure/functions-core")` resolve to the stand-in, in this process, from any
 * module. `@azure/functions` caches the first answer, so this must run before it is first used.
 */
export function installFunctionsCore(): void {
  if (installed) return;
  installed = true;
  const core = new Module(VIRTUAL_PATH);
  core.filename = VIRTUAL_PATH;
  core.loaded = true;
  core.exports = coreApi;
  const internals = Module as unknown as {
    _cache: Record<string, Module>;
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
  };
  internals._cache[VIRTUAL_PATH] = core;
  const resolveFilename = internals._resolveFilename;
  internals._resolveFilename = function (request: string, ...rest: unknown[]): string {
    return request === CORE_MODULE ? VIRTUAL_PATH : resolveFilename.call(this, request, ...rest);
  };
}

/** The entry point the worker loads: package.json `main` under the app directory. */
export function appEntry(appDir: string): string {
  const manifest = join(appDir, "package.json");
  if (!existsSync(manifest)) throw new Error(`${appDir}: no package.json (is this a function app?)`);
  const { main } = JSON.parse(readFileSync(manifest, "utf8")) as { main?: unknown };
  if (typeof main !== "string" || main === "")
    throw new Error(`${manifest}: "main" must name the entry point the Functions worker loads`);
  const entry = resolve(appDir, main);
  if (!existsSync(entry))
    throw new Error(`${manifest}: main '${main}' does not exist (build or package first)`);
  return entry;
}

/** Loads the app's entry point as the worker does and returns what it registered. */
export function loadFunctionsApp(appDir: string): RegisteredFunction[] {
  installFunctionsCore();
  const entry = appEntry(appDir);
  const registered: RegisteredFunction[] = [];
  recorder = registered;
  try {
    Module.createRequire(entry)(entry);
  } finally {
    recorder = undefined;
  }
  if (registered.length === 0)
    throw new Error(`${entry} registered no function (was it loaded before, or is it in test mode?)`);
  return registered;
}

/** The trigger binding of a function (the one whose type ends in "Trigger"). */
export function triggerOf(fn: RegisteredFunction): CoreBinding {
  const trigger = Object.values(fn.bindings).find((b) => /trigger$/i.test(b.type));
  if (!trigger) throw new Error(`function '${fn.name}' has no trigger binding`);
  return trigger;
}

export function summarize(fn: RegisteredFunction): FunctionSummary {
  const t = triggerOf(fn);
  return {
    name: fn.name,
    trigger: t.type,
    ...(t.authLevel !== undefined ? { authLevel: t.authLevel } : {}),
    ...(t.methods !== undefined ? { methods: [...t.methods] } : {}),
    ...(t.route !== undefined ? { route: t.route } : {}),
    ...(t.schedule !== undefined ? { schedule: t.schedule } : {}),
  };
}

/**
 * `node functionsCore.js <appDir>`: loads the app through the stand-in and prints its functions
 * as JSON, with the load time, the files loaded from outside the app directory (a packed artifact
 * must have none) and the modules that were asked for but not found (optional ones are caught).
 */
function main(appDir: string): void {
  const root = resolve(appDir);
  const loaded = new Set<string>();
  const unresolved = new Set<string>();
  const internals = Module as unknown as {
    _load: (request: string, parent: Module | null, ...r: unknown[]) => unknown;
  };
  const load = internals._load;
  internals._load = function (request: string, parent: Module | null, ...rest: unknown[]): unknown {
    if (!Module.isBuiltin(request) && request !== CORE_MODULE) {
      const from = parent?.filename ? dirname(parent.filename) : root;
      try {
        loaded.add(Module.createRequire(join(from, "noop.js")).resolve(request));
      } catch {
        unresolved.add(request);
      }
    }
    return load.call(this, request, parent, ...rest);
  };
  const started = process.hrtime.bigint();
  const functions = loadFunctionsApp(root);
  const loadMs = Number(process.hrtime.bigint() - started) / 1e6;
  const outside = [...loaded].filter((f) => !f.startsWith(root + sep));
  process.stdout.write(
    `${JSON.stringify({ functions: functions.map(summarize), loadMs, files: loaded.size, outside, unresolved: [...unresolved] })}\n`,
  );
}

if (require.main === module) {
  const [appDir] = process.argv.slice(2);
  if (!appDir) {
    process.stderr.write("usage: node functionsCore.js <function app directory>\n");
    process.exitCode = 2;
  } else {
    main(appDir);
  }
}

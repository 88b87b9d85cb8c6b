/**
 * The control plane as Functions runs it — the route table, real HttpRequest and
 * InvocationContext objects, real auth — on Azurite, with the relay and the device signaller
 * replaceable. Requests are dispatched in process by the local host's route matcher.
 */
import { HttpRequest, HttpResponse, type HttpResponseInit, InvocationContext } from "@azure/functions";
import { createServices } from "../../shared/app";
import { mintSasToken } from "../../shared/auth";
import { loadConfig } from "../../shared/config";
import type { HttpRouteDef, RouteTable } from "../../shared/http/routeTypes";
import { ROUTE_PREFIX } from "../../shared/http/routeTypes";
import { silentLogger } from "../../shared/log";
import { type AppServices, createRouteTable } from "../../shared/routes";
import { RouteMatcher } from "../../devstack/routes";
import { useAzurite } from "./azurite";
import { MemoryRelay, ScriptedSignaller } from "./fakes";

export const WPS_KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
export const KEYS = {
  service: Buffer.alloc(32, 1).toString("base64"),
  webOnly: Buffer.alloc(32, 2).toString("base64"),
  reader: Buffer.alloc(32, 3).toString("base64"),
  echoOnly: Buffer.alloc(32, 4).toString("base64"),
  gateway: Buffer.alloc(32, 5).toString("base64"),
};
export const SAS_RESOURCE = "localhost";

export const POLICIES = [
  { name: "service", primaryKey: KEYS.service, devices: ["*", "*/*"], streams: ["*"] },
  { name: "web-only", primaryKey: KEYS.webOnly, devices: ["Dev*"], streams: ["web"] },
  { name: "reader", primaryKey: KEYS.reader, devices: ["*"], streams: ["*"], actions: ["list", "show"] },
  { name: "echo-only", primaryKey: KEYS.echoOnly, devices: ["*"], streams: ["echo"] },
  { name: "gateway", primaryKey: KEYS.gateway, devices: ["*"], streams: ["*"], maxStreamsPerDevice: 100 },
];

export function localEnv(
  tablesConnectionString: string,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    TABLES_CONNECTION_STRING: tablesConnectionString,
    WEBPUBSUB_CONNECTION_STRING: `Endpoint=http://localhost:8080;AccessKey=${WPS_KEY};Version=1.0;`,
    IOTHUB_CONNECTION_STRING: `HostName=localhost:8443;SharedAccessKeyName=service;SharedAccessKey=${KEYS.service}`,
    SERVICE_SAS_POLICIES: JSON.stringify(POLICIES),
    STREAMS_MAX_PER_DEVICE: "4",
    ...extra,
  };
}

export function sas(
  policy: keyof typeof KEYS = "service",
  expiresAt = new Date(Date.now() + 600_000),
): string {
  const names: Partial<Record<keyof typeof KEYS, string>> = { webOnly: "web-only", echoOnly: "echo-only" };
  const policyName = names[policy] ?? policy;
  return mintSasToken({ resource: SAS_RESOURCE, policyName, key: KEYS[policy], expiresAt });
}

export interface CallInit {
  headers?: Record<string, string>;
  /** JSON-serialised unless it is a string or a Buffer. */
  body?: unknown;
  /** Defaults to a valid service SAS; `null` sends no Authorization header. */
  auth?: string | null;
}

export interface CallResult {
  status: number;
  headers: Headers;
  text: string;
  json: () => any;
}

export interface ControlPlane {
  table: RouteTable;
  services: AppServices;
  relay: MemoryRelay;
  signaller: ScriptedSignaller;
  call(method: string, path: string, init?: CallInit): Promise<CallResult>;
}

/** Dispatches like the Functions host: route match, real request objects, the handler, the response. */
export async function dispatch(
  table: RouteTable,
  method: string,
  path: string,
  init: CallInit = {},
): Promise<CallResult> {
  const matcher = new RouteMatcher<HttpRouteDef>(table.http, ROUTE_PREFIX);
  const url = new URL(path, "http://localhost:7071");
  const match = matcher.match(method, url.pathname, { decodeBeforeRoute: true });
  // What the Functions host answers when no function takes the request (devstack/host.ts).
  if (match.kind !== "found") return read({ status: 404 });
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.auth !== null && headers.authorization === undefined) headers.authorization = init.auth ?? sas();
  let body: string | Buffer | undefined;
  if (init.body !== undefined) {
    body =
      typeof init.body === "string" || Buffer.isBuffer(init.body) ? init.body : JSON.stringify(init.body);
    headers["content-type"] ??= "application/json";
  }
  const request = new HttpRequest({
    method,
    url: url.toString(),
    headers,
    params: match.params,
    ...(body !== undefined ? { body: typeof body === "string" ? { string: body } : { bytes: body } } : {}),
  });
  const context = new InvocationContext({ functionName: match.def.name, logHandler: () => undefined });
  return read(await match.def.handler(request, context));
}

async function read(init: HttpResponseInit): Promise<CallResult> {
  const response = new HttpResponse(init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) };
}

/** One control plane per test file, on its own Azurite. */
export function useControlPlane(extraEnv: Record<string, string> = {}): () => ControlPlane {
  const azurite = useAzurite();
  let plane: ControlPlane | undefined;
  beforeAll(async () => {
    const relay = new MemoryRelay();
    const signaller = new ScriptedSignaller();
    const config = loadConfig(localEnv(azurite().connectionString, extraEnv));
    const services = await createServices(config, { relay, signaller, logger: silentLogger });
    const table = createRouteTable(async () => services);
    plane = { table, services, relay, signaller, call: (m, p, init) => dispatch(table, m, p, init) };
  }, 30_000);
  return () => {
    if (!plane) throw new Error("useControlPlane(): call it at the top level of the test file");
    return plane;
  };
}

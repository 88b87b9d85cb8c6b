import { DIRECT_METHOD_LIMITS, checkDirectMethodParams } from "../../../shared/iothub/limits";
import { DEV_POLICY, type HubHosts } from "../hub";
import { type Identity, checkId, describeIdentity, identityKey } from "../identity";
import type { EmulatorLog } from "../log";
import type { DirectMethodBridge } from "../methods";
import type { DeviceGateway } from "../mqtt/gateway";
import type { TokenBucket } from "../rateLimit";
import { type IdentityInput, type IdentityRegistry, RegistryError } from "../registry";
import { SasError, parseSas, verifySas } from "../sas";
import { BUILT_IN_ROLES, type BearerCheck } from "../../entra/rbac";
import { HubErrors, type HubHttpError } from "./hubErrors";
import { renderIdentity, renderTwin } from "./render";
import type { HubReply, HubRequest, HubRequestHandler } from "./server";

export interface HubHandlerDeps {
  registry: IdentityRegistry;
  gateway: DeviceGateway;
  bridge: DirectMethodBridge;
  hosts: HubHosts;
  log: EmulatorLog;
  methodRateLimit?: TokenBucket;
  /** Accept Entra ID bearer tokens (audience https://iothubs.azure.net) with a role assignment. */
  entra?: BearerCheck;
  /** Called for each request signed with a SAS key (tests prove the keyless path with it). */
  onKeySignedRequest?: () => void;
}

/** Which built-in roles permit a request: reads, registry writes, or everything (direct methods). */
function rolesFor(request: HubRequest): string[] {
  const r = BUILT_IN_ROLES;
  if (request.method === "GET")
    return [r.iotHubDataContributor, r.iotHubDataReader, r.iotHubRegistryContributor];
  if (request.segments[0] === "devices") return [r.iotHubDataContributor, r.iotHubRegistryContributor];
  return [r.iotHubDataContributor];
}

async function authorize(request: HubRequest, deps: HubHandlerDeps): Promise<void> {
  const { hosts } = deps;
  const header = request.headers.authorization;
  if (!header) throw HubErrors.unauthorized("no Authorization header");
  if (/^Bearer\s/i.test(header)) {
    if (!deps.entra) {
      throw HubErrors.unauthorized(
        `the emulator accepts SAS tokens of the '${DEV_POLICY.name}' policy, not bearer tokens (start it with Entra ID)`,
      );
    }
    const outcome = await deps.entra.check(header, rolesFor(request));
    if (outcome.ok) return;
    throw outcome.status === 403
      ? HubErrors.forbidden(outcome.reason)
      : HubErrors.unauthorized(outcome.reason);
  }
  deps.onKeySignedRequest?.();
  try {
    const sas = parseSas(header);
    if (sas.keyName !== DEV_POLICY.name) throw new SasError(`unknown policy '${sas.keyName ?? ""}' (skn)`);
    const host = sas.resource.split("/")[0] ?? "";
    if (!hosts.accepts(host)) throw new SasError("the token's sr does not name this hub");
    verifySas(sas, [DEV_POLICY.key]);
  } catch (err) {
    if (err instanceof SasError) throw HubErrors.unauthorized(err.message);
    throw err;
  }
}

function identityFrom(deviceId: string, moduleId?: string): Identity {
  const problem =
    checkId("deviceId", deviceId) ?? (moduleId === undefined ? undefined : checkId("moduleId", moduleId));
  if (problem) throw HubErrors.badRequest(problem);
  return moduleId === undefined ? { deviceId } : { deviceId, moduleId };
}

function registryFailure(err: unknown): unknown {
  if (!(err instanceof RegistryError)) return err;
  switch (err.kind) {
    case "AlreadyExists":
      return HubErrors.alreadyExists(err.message);
    case "NotFound":
      return HubErrors.notFound(err.message);
    case "PreconditionFailed":
      return HubErrors.preconditionFailed(err.message);
    case "Invalid":
      return HubErrors.badRequest(err.message);
  }
}

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw HubErrors.badRequest("The request body must be a JSON object.");
  }
  return body as Record<string, unknown>;
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw HubErrors.badRequest(`${field} must be a string.`);
  return value;
}

/** Reads the fields of azure-iothub's Device/Module JSON the emulator keeps. */
function identityInput(body: unknown, identity: Identity): IdentityInput {
  const b = asObject(body);
  if (b.deviceId !== undefined && b.deviceId !== identity.deviceId) {
    throw HubErrors.badRequest("deviceId in the body does not match the path.");
  }
  if (identity.moduleId !== undefined && b.moduleId !== undefined && b.moduleId !== identity.moduleId) {
    throw HubErrors.badRequest("moduleId in the body does not match the path.");
  }
  const status = optionalString(b.status, "status");
  if (status !== undefined && status !== "enabled" && status !== "disabled") {
    throw HubErrors.badRequest("status must be 'enabled' or 'disabled'.");
  }
  const auth = b.authentication === undefined || b.authentication === null ? {} : asObject(b.authentication);
  const type = optionalString(auth.type, "authentication.type");
  if (type !== undefined && type !== "sas") {
    throw HubErrors.badRequest(`The emulator supports only 'sas' authentication, not '${type}'.`);
  }
  const keys =
    auth.symmetricKey === undefined || auth.symmetricKey === null ? {} : asObject(auth.symmetricKey);
  const input: IdentityInput = {};
  const primaryKey = optionalString(keys.primaryKey, "primaryKey");
  const secondaryKey = optionalString(keys.secondaryKey, "secondaryKey");
  const statusReason = optionalString(b.statusReason, "statusReason");
  const managedBy = optionalString(b.managedBy, "managedBy");
  if (primaryKey) input.primaryKey = primaryKey;
  if (secondaryKey) input.secondaryKey = secondaryKey;
  if (status === "enabled" || status === "disabled") input.status = status;
  if (statusReason !== undefined) input.statusReason = statusReason;
  if (managedBy !== undefined) input.managedBy = managedBy;
  return input;
}

function header(request: HubRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The REST surface: registry (devices, modules), minimal twins, direct methods. */
export function createHubHandler(deps: HubHandlerDeps): HubRequestHandler {
  const { registry, gateway, bridge, log } = deps;
  const render = (identity: Identity) => {
    const record = registry.get(identity);
    if (!record) throw HubErrors.notFound(`The ${describeIdentity(identity)} is not registered.`);
    return renderIdentity(record, gateway.isConnected(identity));
  };

  async function identityResource(request: HubRequest, identity: Identity): Promise<HubReply> {
    const allowed = ["GET", "PUT", "DELETE"];
    try {
      switch (request.method) {
        case "GET":
          return { status: 200, body: render(identity) };
        case "PUT": {
          const input = identityInput(request.body, identity);
          const ifMatch = header(request, "if-match");
          if (ifMatch === undefined) {
            const record = await registry.create(identity, input);
            log(`registry created ${describeIdentity(identity)}`);
            return { status: 200, body: renderIdentity(record, false) };
          }
          const { record, revoked } = await registry.update(identity, input, ifMatch);
          log(`registry updated ${describeIdentity(identity)}`);
          if (revoked) gateway.disconnect(identity, "credentials or status changed");
          return { status: 200, body: renderIdentity(record, gateway.isConnected(identity)) };
        }
        case "DELETE": {
          const removed = await registry.delete(identity, header(request, "if-match"));
          for (const r of removed) gateway.disconnect(r, "identity deleted");
          log(`registry deleted ${describeIdentity(identity)}`);
          return { status: 204 };
        }
        default:
          throw HubErrors.methodNotAllowed(request.method, allowed);
      }
    } catch (err) {
      throw registryFailure(err);
    }
  }

  async function invokeMethod(request: HubRequest, identity: Identity): Promise<HubReply> {
    const body = asObject(request.body);
    const problem = checkDirectMethodParams(body);
    if (problem) throw HubErrors.methodArgument(problem);
    const methodName = body.methodName as string;
    const label = `${identityKey(identity)}.${methodName}`;
    const throttle = deps.methodRateLimit?.take();
    if (throttle && !throttle.ok) {
      log(`method ${label}: 429 throttled`);
      throw HubErrors.methodThrottled(throttle.retryAfterSeconds);
    }
    if (!registry.get(identity)) {
      // A module of a registered device is "module not found"; without the device, the device is.
      const moduleMissing = identity.moduleId !== undefined && registry.get({ deviceId: identity.deviceId });
      log(
        `method ${label}: ${moduleMissing ? 404010 : 404001} ${describeIdentity(identity)} is not registered`,
      );
      throw moduleMissing ? HubErrors.methodModuleNotFound() : HubErrors.methodDeviceNotFound();
    }
    const call = {
      methodName,
      payload: body.payload ?? null,
      responseTimeoutInSeconds:
        (body.responseTimeoutInSeconds as number | undefined) ??
        DIRECT_METHOD_LIMITS.responseTimeoutInSeconds.default,
      connectTimeoutInSeconds:
        (body.connectTimeoutInSeconds as number | undefined) ??
        DIRECT_METHOD_LIMITS.connectTimeoutInSeconds.default,
    };
    const started = performance.now();
    log(
      `method call ${label} (response timeout ${call.responseTimeoutInSeconds} s, connect timeout ${call.connectTimeoutInSeconds} s)`,
    );
    const outcome = await bridge.invoke(identity, call, request.signal);
    const took = `${Math.round(performance.now() - started)} ms`;
    let failure: HubHttpError;
    switch (outcome.kind) {
      case "answered":
        log(`method result ${label} rid ${outcome.rid}: status ${outcome.status} in ${took}`);
        return { status: 200, body: { status: outcome.status, payload: outcome.payload } };
      case "offline":
        failure = HubErrors.methodDeviceNotOnline(call.connectTimeoutInSeconds);
        log(`method result ${label}: 404103 not connected or not subscribed after ${took}`);
        break;
      case "timeout":
        failure = HubErrors.methodTimeout();
        log(
          `method result ${label} rid ${outcome.rid}: 504101 no answer within ${call.responseTimeoutInSeconds} s`,
        );
        break;
      case "badAnswer":
        failure = HubErrors.methodBadAnswer(outcome.reason);
        log(`method result ${label} rid ${outcome.rid}: 502 ${outcome.reason}`);
        break;
      case "cancelled":
        failure = HubErrors.unavailable();
        log(`method result ${label}: cancelled (caller gone or emulator closing) after ${took}`);
        break;
    }
    throw failure;
  }

  function twin(request: HubRequest, identity: Identity): HubReply {
    if (request.method !== "GET") {
      throw HubErrors.methodNotAllowed(request.method, ["GET"]);
    }
    const record = registry.get(identity);
    if (!record) throw HubErrors.notFound(`The ${describeIdentity(identity)} is not registered.`);
    return { status: 200, body: renderTwin(record, gateway.isConnected(identity)) };
  }

  return async (request) => {
    await authorize(request, deps);
    if (!request.query.get("api-version"))
      throw HubErrors.badRequest("The api-version query parameter is required.");
    const s = request.segments;
    const [root, id, sub, moduleId, leaf] = s;
    if (root === "devices" && id === undefined && request.method === "GET") {
      return {
        status: 200,
        body: registry.listDevices().map((r) => renderIdentity(r, gateway.isConnected(r))),
      };
    }
    if (root === "devices" && id !== undefined) {
      if (s.length === 2) return identityResource(request, identityFrom(id));
      if (sub === "modules" && s.length === 3 && request.method === "GET") {
        const device = identityFrom(id);
        if (!registry.get(device))
          throw HubErrors.notFound(`The ${describeIdentity(device)} is not registered.`);
        return {
          status: 200,
          body: registry.listModules(id).map((r) => renderIdentity(r, gateway.isConnected(r))),
        };
      }
      if (sub === "modules" && moduleId !== undefined && s.length === 4) {
        return identityResource(request, identityFrom(id, moduleId));
      }
    }
    if (root === "twins" && id !== undefined) {
      const methods = (identity: Identity) => {
        if (request.method !== "POST") throw HubErrors.methodNotAllowed(request.method, ["POST"]);
        return invokeMethod(request, identity);
      };
      if (s.length === 2) return twin(request, identityFrom(id));
      if (s.length === 3 && sub === "methods") return methods(identityFrom(id));
      if (sub === "modules" && moduleId !== undefined) {
        if (s.length === 4) return twin(request, identityFrom(id, moduleId));
        if (s.length === 5 && leaf === "methods") return methods(identityFrom(id, moduleId));
      }
    }
    throw HubErrors.routeNotFound(request.method, request.path);
  };
}

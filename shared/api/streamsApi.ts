/** HTTP handlers of the stream API. Each: authenticate, authorize, validate, act, shape. */
import type { HttpRequest, HttpResponseInit } from "@azure/functions";
import { z } from "zod";
import { encodeIdSegment } from "../../common/ids";
import { Errors } from "../errors";
import { json } from "../http/respond";
import { refuseDeclaredOver } from "../http/body";
import { parseParam, parseQuery, readJson, requireApiVersion } from "../http/request";
import type { StreamRecord } from "../streams/model";
import type { StreamService } from "../streams/service";
import type { AccessControl } from "./access";
import { API_VERSIONS, createStreamBody, listQuery, pathParams, streamList, streamView } from "./schemas";

export interface StreamsApiDeps {
  service: StreamService;
  access: AccessControl;
  maxDataBytes: number;
}

type View = z.infer<typeof streamView>;

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/** The public view of a record: never a relay URL or token, never the request data. */
export function toView(r: StreamRecord): View {
  const view: Record<string, unknown> = {
    streamId: r.streamId,
    deviceId: r.deviceId,
    moduleId: r.moduleId,
    name: r.name,
    state: r.state,
    openedBy: r.openedBy,
    createdAt: iso(r.createdAt),
    acceptedAt: iso(r.acceptedAt),
    establishedAt: iso(r.establishedAt),
    closedAt: iso(r.closedAt),
    handshakeDeadline: iso(r.handshakeDeadline),
    closeCode: r.closeCode,
    closeReason: r.closeReason,
    closedBy: r.closedBy,
    bytesFromService: r.bytesFromService,
    bytesFromDevice: r.bytesFromDevice,
  };
  for (const k of Object.keys(view)) if (view[k] === undefined) delete view[k];
  return view as View;
}

/** Room for the JSON envelope around the bounded `data`: the name, the options, the punctuation. */
const BODY_OVERHEAD_BYTES = 1024;

/** The body limit of stream creation: the request data cap (STREAMS_MAX_DATA_BYTES) plus the envelope. */
export function createBodyLimit(maxDataBytes: number): number {
  return maxDataBytes + BODY_OVERHEAD_BYTES;
}
const REPEATABILITY_ID = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");

export class StreamsApi {
  constructor(private readonly deps: StreamsApiDeps) {}

  async create(request: HttpRequest): Promise<HttpResponseInit> {
    const bodyLimit = createBodyLimit(this.deps.maxDataBytes);
    // A declared size over the limit costs nothing to refuse, not even the authentication.
    refuseDeclaredOver(request, bodyLimit);
    requireApiVersion(request, API_VERSIONS);
    const caller = await this.deps.access.authenticate(request);
    const deviceId = parseParam(request, "deviceId", pathParams.deviceId);
    const moduleId =
      request.params.moduleId !== undefined
        ? parseParam(request, "moduleId", pathParams.moduleId)
        : undefined;
    const body = await readJson(request, createStreamBody, bodyLimit);
    this.deps.access.authorize(caller, "open", {
      deviceId,
      ...(moduleId !== undefined ? { moduleId } : {}),
      streamName: body.name,
    });
    const data = body.data === undefined ? undefined : JSON.stringify(body.data);
    if (data !== undefined && Buffer.byteLength(data) > this.deps.maxDataBytes) {
      throw Errors.invalidField(
        "data",
        `${Buffer.byteLength(data)} bytes of JSON; the limit is ${this.deps.maxDataBytes} (IoT Hub meters direct methods in 4 KB chunks)`,
      );
    }
    const repeatabilityHeader = request.headers.get("repeatability-request-id");
    let repeatabilityId: string | undefined;
    if (repeatabilityHeader !== null) {
      const parsed = REPEATABILITY_ID.safeParse(repeatabilityHeader);
      if (!parsed.success)
        throw Errors.invalidField("Repeatability-Request-ID", parsed.error.issues[0]?.message ?? "invalid");
      repeatabilityId = parsed.data;
    }
    const created = await this.deps.service.create({
      deviceId,
      ...(moduleId !== undefined ? { moduleId } : {}),
      name: body.name,
      ...(data !== undefined ? { data } : {}),
      handshakeTimeoutSeconds: body.handshakeTimeoutSeconds,
      openedBy: caller.id,
      caller: caller.share,
      ...(repeatabilityId !== undefined ? { repeatabilityId } : {}),
    });
    const location = streamLocation(request, deviceId, created.record.streamId);
    return json(
      201,
      {
        ...toView(created.record),
        relay: created.relay,
        expiresAt: new Date(created.expiresAt).toISOString(),
        ...(created.deviceResponse !== undefined ? { deviceResponse: created.deviceResponse } : {}),
      },
      { Location: location, "Cache-Control": "no-store" },
    );
  }

  async list(request: HttpRequest): Promise<HttpResponseInit> {
    requireApiVersion(request, API_VERSIONS);
    const caller = await this.deps.access.authenticate(request);
    const deviceId = parseParam(request, "deviceId", pathParams.deviceId);
    const query = parseQuery(request, listQuery);
    this.deps.access.authorize(caller, "list", { deviceId });
    const page = await this.deps.service.list(deviceId, {
      pageSize: query.maxPageSize,
      ...(query.state ? { state: query.state } : {}),
      ...(query.continuationToken ? { continuationToken: query.continuationToken } : {}),
    });
    const visible = page.items.filter((r) => this.deps.access.allows(caller, "list", targetOf(r)));
    const body: z.infer<typeof streamList> = { value: visible.map(toView) };
    if (page.continuationToken) {
      const next = new URL(request.url);
      next.searchParams.set("continuationToken", page.continuationToken);
      body.nextLink = next.toString();
    }
    return json(200, body);
  }

  async show(request: HttpRequest): Promise<HttpResponseInit> {
    const { record } = await this.findForCaller(request, "show");
    return json(200, toView(record));
  }

  async close(request: HttpRequest): Promise<HttpResponseInit> {
    const { caller, record } = await this.findForCaller(request, "close");
    await this.deps.service.close(record.deviceId, record.streamId, caller.id);
    return { status: 204 };
  }

  async closeAll(request: HttpRequest): Promise<HttpResponseInit> {
    requireApiVersion(request, API_VERSIONS);
    const caller = await this.deps.access.authenticate(request);
    const deviceId = parseParam(request, "deviceId", pathParams.deviceId);
    this.deps.access.authorize(caller, "close", { deviceId });
    for (const state of ["Requested", "Accepted", "Established"] as const) {
      let continuationToken: string | undefined;
      do {
        const page = await this.deps.service.list(deviceId, {
          state,
          pageSize: 100,
          ...(continuationToken ? { continuationToken } : {}),
        });
        for (const r of page.items) {
          if (this.deps.access.allows(caller, "close", targetOf(r))) {
            await this.deps.service.close(deviceId, r.streamId, caller.id);
          }
        }
        continuationToken = page.continuationToken;
      } while (continuationToken);
    }
    return { status: 204 };
  }

  private async findForCaller(request: HttpRequest, action: "show" | "close") {
    requireApiVersion(request, API_VERSIONS);
    const caller = await this.deps.access.authenticate(request);
    const deviceId = parseParam(request, "deviceId", pathParams.deviceId);
    const streamId = parseParam(request, "streamId", pathParams.streamId);
    this.deps.access.authorize(caller, action, { deviceId });
    const record = await this.deps.service.get(deviceId, streamId);
    const target = record ? targetOf(record) : undefined;
    // A stream the caller may not see is reported as missing, so names do not leak.
    if (!record || !target || !this.deps.access.allows(caller, "show", target)) {
      throw Errors.notFound("StreamNotFound", `Stream '${streamId}' of device '${deviceId}' does not exist.`);
    }
    this.deps.access.authorize(caller, action, target);
    return { caller, record };
  }
}

function targetOf(r: StreamRecord) {
  return {
    deviceId: r.deviceId,
    streamName: r.name,
    ...(r.moduleId !== undefined ? { moduleId: r.moduleId } : {}),
  };
}

function streamLocation(request: HttpRequest, deviceId: string, streamId: string): string {
  const url = new URL(request.url);
  const base = url.pathname.replace(/\/devices\/.*$/, "");
  const version = url.searchParams.get("api-version") ?? API_VERSIONS[0];
  return `${url.origin}${base}/devices/${encodeIdSegment(deviceId)}/streams/${streamId}?api-version=${version}`;
}

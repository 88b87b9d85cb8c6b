/**
 * The REST contract as zod schemas: the handlers validate with them and the OpenAPI document is
 * generated from them, so the two cannot disagree.
 */
import { z } from "zod";
import { ID_RULE, ID_SEGMENT_PATTERN, NOT_CANONICAL, decodeIdSegment } from "../../common/ids";
import { CLOSE_CODES, STREAM_STATES } from "../streams/model";

/** 2026-12-01: `{deviceId}` and `{moduleId}` path segments became base64url (docs/decisions.md §2). */
export const API_VERSIONS = ["2026-12-01"] as const;

/**
 * A `{deviceId}` or `{moduleId}` path segment: the base64url encoding of an IoT Hub ID, decoded to
 * the plain ID the handlers work with (common/ids.ts).
 */
export const identitySegment = z
  .string()
  .regex(ID_SEGMENT_PATTERN, NOT_CANONICAL)
  .transform((segment, ctx) => {
    const decoded = decodeIdSegment(segment);
    if (decoded.ok) return decoded.id;
    ctx.addIssue({ code: "custom", message: decoded.problem });
    return z.NEVER;
  })
  .describe(
    `The base64url encoding (RFC 4648 §5, no padding) of the ID's UTF-8 bytes; the ID is ${ID_RULE}.`,
  );

export const streamIdParam = z
  .string()
  .regex(/^[A-Za-z0-9_-]{16,64}$/, "a stream id")
  .describe("The control plane's stream ID, as returned when the stream was opened.");

/** Every path parameter of the API, by name: the handlers parse with these and the OpenAPI document shows them. */
export const pathParams = {
  deviceId: identitySegment,
  moduleId: identitySegment,
  streamId: streamIdParam,
} as const;

export const streamName = z
  .string()
  .min(1)
  .max(64)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._:-]*$/,
    "letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
  )
  .describe("The stream name the device maps to a target, e.g. `ssh`.");

export const createStreamBody = z
  .object({
    name: streamName,
    data: z
      .json()
      .optional()
      .describe("Request data passed to the device (bounded by STREAMS_MAX_DATA_BYTES)."),
    handshakeTimeoutSeconds: z
      .number()
      .int()
      .min(5)
      .max(60)
      .default(60)
      .describe("Seconds for the device to answer and both sides to join the relay."),
  })
  .strict();

export const streamView = z.object({
  streamId: z.string(),
  deviceId: z.string(),
  moduleId: z.string().optional(),
  name: z.string(),
  state: z.enum(STREAM_STATES),
  openedBy: z.string().describe("SAS policy name, or Entra object/app id, of the caller that opened it."),
  createdAt: z.iso.datetime(),
  acceptedAt: z.iso.datetime().optional(),
  establishedAt: z.iso.datetime().optional(),
  closedAt: z.iso.datetime().optional(),
  handshakeDeadline: z.iso.datetime(),
  closeCode: z.enum(CLOSE_CODES).optional(),
  closeReason: z.string().optional(),
  closedBy: z.enum(["service", "device", "control-plane", "api"]).optional(),
  bytesFromService: z.number().int().optional(),
  bytesFromDevice: z.number().int().optional(),
});

export const createdStream = streamView.extend({
  relay: z
    .object({
      url: z.string().describe("Web PubSub client URL (no token in it)."),
      token: z.string().describe("Single-use relay token; send it as `Authorization: Bearer`."),
    })
    .describe("The service side's relay credential."),
  expiresAt: z.iso.datetime().describe("The relay credential must be used before this time."),
  deviceResponse: z.json().optional().describe("Data the device returned with its acceptance."),
});

export const streamList = z.object({
  value: z.array(streamView),
  nextLink: z.string().optional(),
});

export const errorBody = z.object({
  error: z.object({ code: z.string(), message: z.string() }).loose(),
});

export const endpointsView = z.object({
  relay: z.object({ endpoint: z.string(), hub: z.string() }),
  iotHub: z.object({ hostName: z.string(), methodName: z.string() }),
  apiVersions: z.array(z.string()),
});

export const listQuery = z.object({
  state: z.enum(STREAM_STATES).optional(),
  maxPageSize: z.coerce.number().int().min(1).max(100).default(50),
  continuationToken: z.string().max(4096).optional(),
});

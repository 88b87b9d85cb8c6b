/**
 * The device's answer to a stream request, read as hostile input: the direct method lets a device
 * answer up to 128 KB, more than a stream record can hold, and its JSON may be nested deeper than
 * JSON.stringify can walk. An answer the control plane cannot record is unusable, and the stream
 * fails cleanly instead of leaving a 500 and a record stuck in Requested.
 */
import { STRING_PROPERTY_MAX_UNITS } from "../store/limits";

/**
 * A rejection reason is a sentence for people: it is logged, printed by the CLI and sent as the
 * relay's close reason (a query parameter of the Web PubSub REST call), so it is kept short.
 */
export const MAX_REASON_UNITS = 1024;

/** The device's `data`, as the caller gets it and as the record stores it (JSON text). */
export interface AnswerData {
  data?: unknown;
  dataJson?: string;
}

export type DeviceAnswer =
  | ({ kind: "accepted" } & AnswerData)
  | ({ kind: "rejected"; reason: string } & AnswerData)
  | { kind: "unusable"; problem: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function readDeviceAnswer(status: number, payload: unknown): DeviceAnswer {
  const body = isObject(payload) ? payload : {};
  const unusable = (problem: string): DeviceAnswer => ({ kind: "unusable", problem });
  let answerData: AnswerData = {};
  if (body.data !== undefined) {
    let dataJson: string;
    try {
      dataJson = JSON.stringify(body.data);
    } catch {
      return unusable("its data cannot be written back as JSON (it is nested too deeply)");
    }
    if (dataJson.length > STRING_PROPERTY_MAX_UNITS) {
      return unusable(
        `its data is ${dataJson.length} UTF-16 code units of JSON; at most ${STRING_PROPERTY_MAX_UNITS} can be stored`,
      );
    }
    answerData = { data: body.data, dataJson };
  }
  if (status >= 200 && status < 300 && body.accepted === true) return { kind: "accepted", ...answerData };
  const reason = typeof body.reason === "string" && body.reason !== "" ? body.reason : undefined;
  if (reason !== undefined && reason.length > MAX_REASON_UNITS) {
    return unusable(
      `its rejection reason is ${reason.length} UTF-16 code units; the limit is ${MAX_REASON_UNITS}`,
    );
  }
  return {
    kind: "rejected",
    reason: reason ?? `the device answered status ${status} without accepting`,
    ...answerData,
  };
}

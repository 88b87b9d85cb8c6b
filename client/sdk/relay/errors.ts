export type RelayErrorCode =
  "RelayNotAllowed" | "RelayRefused" | "RelayUnreachable" | "RelayTimeout" | "RelayClosed" | "Aborted";

/** Why a relay connection could not be made. Messages never contain the token. */
export class RelayError extends Error {
  override readonly name = "RelayError";
  constructor(
    readonly code: RelayErrorCode,
    message: string,
    /** The HTTP status of a refused upgrade. */
    readonly statusCode?: number,
  ) {
    super(message);
  }
}

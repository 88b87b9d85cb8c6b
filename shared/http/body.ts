/**
 * The one way a route reads its request body: as a stream, with the route's own limit. With HTTP
 * streaming on (functions/index.ts) the Functions worker hands the handler the body unread, so
 * this is where the bytes a caller sends stop costing memory: a declared `Content-Length` over
 * the limit is refused before a byte is read, and a chunked body stops being read at the limit
 * (nothing after it is buffered; the host drops the rest with the connection).
 */
import type { ReadableStreamDefaultReader, ReadableStreamReadResult } from "node:stream/web";
import type { HttpRequest } from "@azure/functions";
import { Errors, isApiError } from "../errors";

export type BodySource = Pick<HttpRequest, "headers" | "body">;

/** 413 when the declared `Content-Length` is over `maxBytes`; reads nothing. */
export function refuseDeclaredOver(request: Pick<HttpRequest, "headers">, maxBytes: number): void {
  const declared = request.headers.get("content-length");
  // Node's parser refuses a malformed Content-Length before the request gets here.
  if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared) > maxBytes) {
    throw Errors.payloadTooLarge(
      `The request body is ${declared.trim()} bytes; this route accepts at most ${maxBytes}.`,
    );
  }
}

/** The whole body, at most `maxBytes` of it; more is a 413 with the rest left unread. */
export async function readBody(request: BodySource, maxBytes: number): Promise<Buffer> {
  refuseDeclaredOver(request, maxBytes);
  const stream = request.body;
  if (stream === null) return Buffer.alloc(0);
  // Bytes, whichever host built the stream (the worker's Request, or devstack's).
  const reader = stream.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await readChunk(reader);
      if (done) break;
      total += value.byteLength;
      // Releasing the reader without cancelling leaves the rest unread: cancelling would destroy
      // the request, and with it the connection the 413 must still go out on.
      if (total > maxBytes)
        throw Errors.payloadTooLarge(`The request body exceeds the ${maxBytes} bytes this route accepts.`);
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(chunks, total);
}

async function readChunk(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  try {
    return await reader.read();
  } catch (err) {
    // A host-level limit (devstack's FUNCTIONS_REQUEST_BODY_SIZE_LIMIT) arrives as an ApiError;
    // anything else is a client that stopped sending mid-body.
    if (isApiError(err)) throw err;
    throw Errors.badRequest("IncompleteBody", "The request body ended before it was complete.");
  }
}

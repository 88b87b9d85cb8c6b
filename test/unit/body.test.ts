/** The one body reader (shared/http/body.ts) and the JSON bounds (shared/http/json.ts). */
import { ReadableStream } from "node:stream/web";
import { ApiError } from "../../shared/errors";
import { readBody } from "../../shared/http/body";
import { checkJsonBounds, parseJson } from "../../shared/http/json";

/** A body of `chunks` chunks of `size` bytes that counts how many were pulled. */
function source(chunks: number, size: number, headers: Record<string, string> = {}) {
  const pulled = { count: 0 };
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (pulled.count === chunks) return controller.close();
        pulled.count++;
        controller.enqueue(new Uint8Array(size));
      },
    },
    { highWaterMark: 0 },
  );
  return { request: { headers: new Headers(headers), body }, pulled };
}

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(err)}`);
  return err;
}

describe("readBody", () => {
  it("reads a body within the limit", async () => {
    const { request } = source(3, 100);
    expect((await readBody(request, 300)).length).toBe(300);
  });

  it("refuses a declared Content-Length over the limit without reading a byte", async () => {
    const { request, pulled } = source(3, 100, { "content-length": "301" });
    const err = await failure(readBody(request, 300));
    expect([err.statusCode, err.code]).toEqual([413, "RequestBodyTooLarge"]);
    expect(pulled.count).toBe(0);
  });

  it("stops reading a chunked body at the limit, leaving the rest unread and the stream open", async () => {
    const { request, pulled } = source(1000, 100);
    const err = await failure(readBody(request, 250));
    expect(err.statusCode).toBe(413);
    expect(pulled.count).toBe(3);
    expect(request.body.locked).toBe(false);
  });

  it("turns a body that breaks off into a 400", async () => {
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error("aborted"));
      },
    });
    const err = await failure(readBody({ headers: new Headers(), body }, 100));
    expect([err.statusCode, err.code]).toEqual([400, "IncompleteBody"]);
  });
});

describe("JSON bounds", () => {
  const bounds = { maxDepth: 4, maxMembers: 3 };
  const refusal = (text: string) => {
    try {
      checkJsonBounds(text, bounds);
    } catch (err) {
      return err instanceof ApiError ? [err.statusCode, err.message] : err;
    }
    return undefined;
  };

  it("lets documents within the bounds through", () => {
    for (const text of [
      '{"a":[[["x"]]],"b":1,"c":null}',
      '[1,{"k":"v","l":"w","m":"z"},"]]]]]][[[[[{{{{"]',
      '"just a string"',
      '{"esc\\"[[[[[":"\\\\[[[[[["}',
      "",
    ]) {
      expect(refusal(text)).toBeUndefined();
    }
  });

  it("names the top-level field that is too deep", () => {
    expect(refusal('{"name":"x","data":[[[[1]]]]}')).toEqual([400, "data: nested deeper than 4 levels"]);
    expect(refusal("[[[[[]]]]]")).toEqual([400, "(body): nested deeper than 4 levels"]);
  });

  it("refuses arrays and objects with too many members", () => {
    expect(refusal('{"data":[1,"2",true,null]}')).toEqual([400, "data: an array has more than 3 members"]);
    expect(refusal('{"data":{"a":1,"b":[],"c":{},"d":2}}')).toEqual([
      400,
      "data: an object has more than 3 members",
    ]);
    expect(refusal('{"data":[[],{},[]]}')).toBeUndefined();
  });

  it("shows at most 64 characters of a hostile key", () => {
    const key = "k".repeat(500);
    const result = refusal(`{"${key}":[[[[1]]]]}`) as [number, string];
    expect(result[1]).toBe(`${"k".repeat(64)}…: nested deeper than 4 levels`);
  });

  it("handles 2,000 levels and megabytes without recursion", () => {
    expect(() => parseJson("[".repeat(100_000))).toThrow("nested deeper than 32 levels");
    expect(() => parseJson(`[${"1,".repeat(500_000)}1]`)).toThrow("more than 4096 members");
  });

  it("reports text that is not JSON as InvalidJson", () => {
    expect(() => parseJson("{nope")).toThrow("The body is not valid JSON.");
  });
});

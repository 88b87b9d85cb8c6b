/** corkForTick: the writes of one tick leave in one batch, and a cork it did not make is left alone. */
import { Writable } from "node:stream";
import { corkForTick } from "../../client/webpubsub";

function counting() {
  const batches: number[] = [];
  const sink = new Writable({
    writev(chunks, cb) {
      batches.push(chunks.length);
      cb();
    },
    write(_chunk, _enc, cb) {
      batches.push(1);
      cb();
    },
  });
  return { sink, batches };
}

const nextTick = () => new Promise<void>((r) => process.nextTick(r));

describe("corkForTick", () => {
  it("sends the writes of one tick as one batch, then the next tick's as another", async () => {
    const { sink, batches } = counting();
    for (const chunk of ["a", "b", "c"]) {
      corkForTick(sink);
      sink.write(chunk);
    }
    expect(sink.writableCorked).toBe(1);
    await nextTick();
    corkForTick(sink);
    sink.write("d");
    await nextTick();
    expect(batches).toEqual([3, 1]);
    expect(sink.writableCorked).toBe(0);
  });

  it("leaves a socket another owner corked as it is", async () => {
    const { sink, batches } = counting();
    sink.cork();
    corkForTick(sink);
    sink.write("a");
    await nextTick();
    expect(sink.writableCorked).toBe(1);
    expect(batches).toEqual([]);
    sink.uncork();
    expect(batches).toEqual([1]);
  });
});

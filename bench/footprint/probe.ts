/**
 * Preloaded (`node -r`) into the processes bench/suites/footprint.ts measures: the agent and the
 * floors it stands beside, and `devicestream connect`. It changes nothing they do.
 *
 * - With an IPC channel (fork): answers `{ type: "memory", gc }` with process.memoryUsage(), after
 *   two forced GCs and a pause when `gc` is asked (the process runs with --expose-gc).
 * - With FOOTPRINT_MARKS=<file>: appends one JSON line at exit with the process's time origin and
 *   the moments (performance.now()) of the hops of a `connect`: main module started, POST sent and
 *   answered (fetch or node:http), relay WebSocket upgrade requested and completed, first byte
 *   written to stdout.
 */
import { appendFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import Module from "node:module";
import { performance } from "node:perf_hooks";

export interface ProbeMarks {
  timeOrigin: number;
  marks: Record<string, number>;
}

export type MemoryReply = {
  type: "memory";
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
};

if (process.send) {
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on("message", (m: { type?: string; gc?: boolean }) => {
    if (m?.type !== "memory") return;
    void (async () => {
      if (m.gc && gc) {
        // Two GCs and a pause, so freed pages have been handed back before RSS is read.
        gc();
        await new Promise((resolve) => setTimeout(resolve, 200));
        gc();
      }
      const { rss, heapTotal, heapUsed, external } = process.memoryUsage();
      process.send?.({ type: "memory", rss, heapTotal, heapUsed, external } satisfies MemoryReply);
    })();
  });
  // The channel is the bench's, not the process's: it must not keep a finished process alive.
  process.channel?.unref();
}

const marksFile = process.env.FOOTPRINT_MARKS;
if (marksFile) {
  const marks: Record<string, number> = {};
  const mark = (name: string) => {
    marks[name] ??= performance.now();
  };

  const moduleWithLoad = Module as unknown as {
    _load: (request: string, parent: unknown, isMain: boolean) => unknown;
  };
  const load = moduleWithLoad._load;
  moduleWithLoad._load = function (request, parent, isMain) {
    if (isMain) mark("main");
    return load.call(this, request, parent, isMain);
  };

  const fetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    mark("postSent");
    const res = await fetch(input, init);
    mark("postAnswered");
    return res;
  };

  for (const mod of [http, https]) {
    const request = mod.request;
    mod.request = function (this: unknown, ...args: unknown[]) {
      const req = request.apply(this, args as Parameters<typeof http.request>);
      if (req.getHeader("upgrade")) {
        mark("relayRequested");
        req.once("upgrade", () => mark("relayJoined"));
      } else {
        mark("postSent");
        req.once("response", () => mark("postAnswered"));
      }
      return req;
    };
  }

  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((...args: Parameters<typeof write>) => {
    mark("firstByte");
    return write(...args);
  }) as typeof process.stdout.write;

  process.on("exit", () => {
    const line: ProbeMarks = { timeOrigin: performance.timeOrigin, marks };
    appendFileSync(marksFile, `${JSON.stringify(line)}\n`);
  });
}

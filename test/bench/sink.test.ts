import { type AddressInfo, type Server, connect, createServer } from "node:net";
import { once } from "node:events";
import { sink, throughput } from "../../bench/suites/tunnel";

jest.setTimeout(30_000);

/** A TCP relay to `port` that lets `mangle` change what passes. */
async function relay(port: number, mangle: (chunk: Buffer, offset: number) => Buffer): Promise<Server> {
  const server = createServer((socket) => {
    const out = connect(port, "127.0.0.1");
    let offset = 0;
    socket.on("data", (chunk: Buffer) => {
      out.write(mangle(chunk, offset));
      offset += chunk.length;
    });
    for (const s of [socket, out]) s.on("error", () => undefined);
    socket.on("close", () => out.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

describe("bench sink", () => {
  const total = 3 * 1024 * 1024 + 5;
  let target: Awaited<ReturnType<typeof sink>>;
  const servers: Server[] = [];
  beforeAll(async () => (target = await sink()));
  afterAll(async () => {
    for (const s of servers) s.close();
    await target.close();
  });

  it("accepts the bytes as sent", async () => {
    await expect(throughput(target.port, total, target.received)).resolves.toBeGreaterThan(0);
  });

  it("names the first wrong byte", async () => {
    const at = 2 * 1024 * 1024 + 77;
    const server = await relay(target.port, (chunk, offset) => {
      if (at < offset || at >= offset + chunk.length) return chunk;
      const copy = Buffer.from(chunk);
      copy[at - offset] = copy[at - offset]! ^ 1;
      return copy;
    });
    servers.push(server);
    const port = (server.address() as AddressInfo).port;
    await expect(throughput(port, total, target.received)).rejects.toThrow(`first wrong one at offset ${at}`);
  });

  it("sees bytes swapped between chunks", async () => {
    let held: Buffer | undefined;
    const server = await relay(target.port, (chunk) => {
      // Hold the first chunk back and send it after the second: reordered, nothing lost.
      if (!held && chunk.length > 1) {
        held = chunk;
        return Buffer.alloc(0);
      }
      if (held) {
        const both = Buffer.concat([chunk, held]);
        held = Buffer.alloc(0);
        return both;
      }
      return chunk;
    });
    servers.push(server);
    const port = (server.address() as AddressInfo).port;
    await expect(throughput(port, total, target.received)).rejects.toThrow(/first wrong one at offset/);
  });
});

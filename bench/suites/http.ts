/**
 * HTTP to a device by ID through the SDK (issue 16): a warm request's latency through
 * DeviceHttpAgent and through the SDK's fetch, and requests/s at 50 concurrent keep-alive
 * connections, each beside the same load sent straight to the device's web server on loopback in
 * the same run. Everything (control plane, emulators, device agent, web server) runs in this
 * process, so the figures include the device side's CPU too.
 */
import http from "node:http";
import { performance } from "node:perf_hooks";
import { startAgent } from "../../client/cli/agent";
import { DeviceHttpAgent, createDeviceFetch } from "../../client/sdk/service";
import { percentile } from "../stats";
import type { BenchRow, BenchSuite } from "../types";
import { listen, localStack } from "./tunnel";

const BODY = Buffer.alloc(1024, 0x61);

function get(agent: http.Agent, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: "/", agent }, (res) => {
      res.on("data", () => undefined);
      res.on("end", resolve);
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/** Sequential requests after a warm-up; returns the p50 in ms. */
async function p50(request: () => Promise<void>, count: number): Promise<number> {
  for (let i = 0; i < 20; i++) await request();
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await request();
    times.push(performance.now() - started);
  }
  return percentile(
    times.sort((a, b) => a - b),
    50,
  );
}

/** `concurrency` request loops for `seconds`; requests per second. */
async function rate(request: () => Promise<void>, concurrency: number, seconds: number): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        await request();
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

const suite: BenchSuite = async ({ quick }) => {
  const count = quick ? 100 : 1000;
  const seconds = quick ? 1 : 5;
  const concurrency = 50;
  const closers: Array<() => Promise<void>> = [];
  const rows: BenchRow[] = [];
  try {
    const web = http.createServer((_req, res) => res.end(BODY));
    const webPort = await listen(web);
    closers.push(() => new Promise<void>((r) => web.close(() => r())));
    const stack = await localStack();
    closers.push(stack.close);
    const deviceId = "bench-http";
    const device = startAgent(await stack.device(deviceId), {
      targets: new Map([["web", { host: "127.0.0.1", port: webPort }]]),
      relay: { endpoint: stack.relayEndpoint, hub: stack.relayHub, allowInsecure: true },
    });
    closers.push(() => device.close());
    const target = { deviceId, streamName: "web" };
    const agent = new DeviceHttpAgent(stack.client, target);
    closers.push(() => agent.close());
    const deviceFetch = createDeviceFetch(stack.client, target);
    closers.push(() => deviceFetch.close());
    const direct = new http.Agent({ keepAlive: true });
    closers.push(async () => direct.destroy());

    const viaAgent = () => get(agent, "device", 80);
    const viaFetch = async () => void (await (await deviceFetch("http://device/")).arrayBuffer());
    const straight = () => get(direct, "127.0.0.1", webPort);

    const directP50 = await p50(straight, count);
    const agentP50 = await p50(viaAgent, count);
    const fetchP50 = await p50(viaFetch, count);
    const directRate = await rate(straight, concurrency, seconds);
    const agentRate = await rate(viaAgent, concurrency, seconds);
    const fetchRate = await rate(viaFetch, concurrency, seconds);
    const baseline = { name: "straight to the web server on loopback (keep-alive)", value: directP50 };
    rows.push(
      {
        group: "http",
        name: `warm GET p50 through DeviceHttpAgent (1 KiB body, sequential, n=${count})`,
        value: agentP50,
        unit: "ms",
        baseline,
        target: "overhead <= 1 ms",
        note: `overhead ${(agentP50 - directP50).toFixed(2)} ms`,
      },
      {
        group: "http",
        name: `warm GET p50 through the SDK's fetch (1 KiB body, sequential, n=${count})`,
        value: fetchP50,
        unit: "ms",
        baseline,
        note: `overhead ${(fetchP50 - directP50).toFixed(2)} ms`,
      },
      {
        group: "http",
        name: `GET/s through DeviceHttpAgent, ${concurrency} concurrent keep-alive (${seconds} s)`,
        value: agentRate,
        unit: "req/s",
        baseline: { name: "straight to the web server", value: directRate },
        note: `${agent.pool.openStreams.length} stream(s) open at the end`,
      },
      {
        group: "http",
        name: `GET/s through the SDK's fetch, ${concurrency} concurrent keep-alive (${seconds} s)`,
        value: fetchRate,
        unit: "req/s",
        baseline: { name: "straight to the web server", value: directRate },
      },
    );
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  }
  return rows;
};

export default suite;

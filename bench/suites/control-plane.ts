/**
 * Control-plane overhead per stream create, over HTTP through the local host, against Azurite.
 * The device signaller answers at once (after the device's relay `connect` event is handled,
 * as a real device joins before it answers), so the figure is our code plus Table Storage, not
 * IoT Hub. Baseline: the same host answering GET /api/health, in the same run.
 */
import { performance } from "node:perf_hooks";
import { encodeIdSegment } from "../../common/ids";
import { startAzuriteTable } from "../../devstack/azurite";
import { API_VERSIONS } from "../../shared/api/schemas";
import { startLocalHost } from "../../devstack/host";
import { createServices } from "../../shared/app";
import { mintSasToken } from "../../shared/auth";
import { loadConfig } from "../../shared/config";
import type { DirectMethodInvoker } from "../../shared/iothub";
import { silentLogger } from "../../shared/log";
import { type AppServices, createRouteTable } from "../../shared/routes";
import { relayUserId } from "../../shared/streams/model";
import type { BenchRow, BenchSuite } from "../types";

const KEY = Buffer.alloc(32, 9).toString("base64");

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function measure(
  count: number,
  concurrency: number,
  run: (i: number) => Promise<void>,
): Promise<{ p50: number; p99: number; perSecond: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t = performance.now();
        await run(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), perSecond: count / elapsed };
}

const suite: BenchSuite = async ({ quick }) => {
  const azurite = await startAzuriteTable({ port: 0 });
  const env = {
    TABLES_CONNECTION_STRING: azurite.connectionString,
    WEBPUBSUB_CONNECTION_STRING:
      "Endpoint=http://localhost:8080;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;",
    IOTHUB_CONNECTION_STRING: `HostName=localhost:8443;SharedAccessKeyName=service;SharedAccessKey=${KEY}`,
    SERVICE_SAS_POLICIES: JSON.stringify([
      { name: "bench", primaryKey: KEY, devices: ["*"], streams: ["*"] },
    ]),
    LOG_LEVEL: "error",
  };
  const late: { services?: AppServices } = {};
  const signaller: DirectMethodInvoker = {
    async invoke(_target, request) {
      const { streamId } = request.payload as { streamId: string };
      await late.services?.service.onConnect(relayUserId(streamId, "device"), `dev-${streamId}`);
      return { status: 200, payload: { accepted: true } };
    },
  };
  const ready = await createServices(loadConfig(env), { signaller, logger: silentLogger });
  late.services = ready;
  const host = await startLocalHost({
    table: createRouteTable(async () => ready),
    port: 0,
    logger: silentLogger,
  });
  const auth = mintSasToken({ resource: "localhost", policyName: "bench", key: KEY, ttlSeconds: 3600 });
  const rows: BenchRow[] = [];
  try {
    const create = async (i: number, prefix: string) => {
      const res = await fetch(
        `${host.url}/api/devices/${encodeIdSegment(`bench-${prefix}-${i}`)}/streams?api-version=${API_VERSIONS[0]}`,
        {
          method: "POST",
          headers: { authorization: auth, "content-type": "application/json" },
          body: '{"name":"ssh"}',
        },
      );
      await res.arrayBuffer();
      if (res.status !== 201) throw new Error(`create answered ${res.status}`);
    };
    const health = async () => {
      const res = await fetch(`${host.url}/api/health`);
      await res.arrayBuffer();
    };
    const n = quick ? 60 : 600;
    await measure(20, 4, (i) => create(i, "warm"));
    const base1 = await measure(n, 1, health);
    const c1 = await measure(n, 1, (i) => create(i, "c1"));
    const base16 = await measure(n * 2, 16, health);
    const c16 = await measure(n * 2, 16, (i) => create(i, "c16"));
    const note = "HTTP + Azurite; signaller answers at once (labelled)";
    rows.push(
      {
        group: "control plane",
        name: "stream create p50 (c=1)",
        value: c1.p50,
        unit: "ms",
        baseline: { name: "health p50", value: base1.p50 },
        target: "<= 20 ms",
        note,
      },
      {
        group: "control plane",
        name: "stream create p99 (c=1)",
        value: c1.p99,
        unit: "ms",
        baseline: { name: "health p99", value: base1.p99 },
        target: "<= 60 ms",
        note,
      },
      {
        group: "control plane",
        name: "stream creates/s (c=16)",
        value: c16.perSecond,
        unit: "/s",
        baseline: { name: "health requests/s", value: base16.perSecond },
        note,
      },
      {
        group: "control plane",
        name: "stream create p99 (c=16)",
        value: c16.p99,
        unit: "ms",
        baseline: { name: "health p99", value: base16.p99 },
        note,
      },
    );
  } finally {
    await host.close();
    await azurite.close();
  }
  return rows;
};

export default suite;

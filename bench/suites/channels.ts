/**
 * The cost of a channel (issue 15, point 4): connection churn, small request/response and bulk
 * through one `forward`, each beside the same load in the same run (direct on loopback, or the bare
 * ws relay with the same hops for bulk), and the agent's CPU per 1,000 channel opens and per GiB.
 * Churn and request/response also run through the floor (bench/floor): a minimal multiplexer over
 * the same relay, hops and processes, so the relay's share of the cost is told from the tunnel's.
 * The agent runs with its default settings in its own process, so process.cpuUsage() there is what
 * a device owner pays; everything else (control plane, relay and hub emulators, forward) runs here.
 */
import { once } from "node:events";
import { type Socket, connect } from "node:net";
import { performance } from "node:perf_hooks";
import { startAgentProcess } from "../agentProcess";
import { startFloor } from "../floor";
import type { BenchRow, BenchSuite } from "../types";
import { bareBridge, bareRelay, echoServer, forwarders, localStack, sink, throughput } from "./tunnel";

const MiB = 1024 * 1024;
const PROBE = Buffer.alloc(64, 0x62);

// ---- loads ----

/** Resolves once `socket` has delivered `n` more bytes. */
function readBytes(socket: Socket, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (b: Buffer) => {
      got += b.length;
      if (got >= n) {
        socket.off("data", onData);
        socket.off("error", reject);
        resolve();
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
}

/** Sequential short connections: connect, 64 B echoed, close; connections per second. */
async function churn(port: number, count: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const socket = connect({ port, host: "127.0.0.1", noDelay: true });
    const echoed = readBytes(socket, PROBE.length);
    socket.write(PROBE);
    await echoed;
    const closed = once(socket, "close");
    socket.end();
    await closed;
  }
  return count / ((performance.now() - started) / 1000);
}

/** `connections` connections each doing 64 B request/response back to back; operations per second. */
async function requestResponse(port: number, connections: number, seconds: number): Promise<number> {
  const sockets = await Promise.all(
    Array.from({ length: connections }, async () => {
      const socket = connect({ port, host: "127.0.0.1", noDelay: true });
      await once(socket, "connect");
      // One warm-up round trip: with a pooled forward the channel is open once this returns.
      const echoed = readBytes(socket, PROBE.length);
      socket.write(PROBE);
      await echoed;
      return socket;
    }),
  );
  let ops = 0;
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    sockets.map(async (socket) => {
      while (performance.now() < until) {
        const echoed = readBytes(socket, PROBE.length);
        socket.write(PROBE);
        await echoed;
        ops++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(
    sockets.map((s) => {
      const closed = once(s, "close");
      s.end();
      return closed;
    }),
  );
  return ops / elapsed;
}

// ---- the suite ----

const suite: BenchSuite = async ({ quick }) => {
  const churnCount = quick ? 100 : 2000;
  const rrSeconds = quick ? 1 : 5;
  const bulk = quick ? 16 * MiB : 512 * MiB;
  const closers: Array<() => Promise<void>> = [];
  const rows: BenchRow[] = [];
  try {
    const echo = await echoServer();
    const target = await sink();
    closers.push(echo.close, target.close);
    const stack = await localStack();
    closers.push(stack.close);
    // CHANNELS_BENCH_AGENT_PROF=DIR writes the agent's CPU profile there (node --cpu-prof).
    const prof = process.env.CHANNELS_BENCH_AGENT_PROF;
    const agent = await startAgentProcess(
      {
        connectionString: await stack.deviceConnectionString("bench-channels"),
        caPem: stack.caPem,
        relayEndpoint: stack.relayEndpoint,
        hub: stack.relayHub,
        targets: { echo: echo.port, sink: target.port },
      },
      prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [],
    );
    closers.push(agent.stop);
    const [echoPort, sinkPort] = await forwarders(stack.client, "bench-channels", ["echo", "sink"], closers);
    const floor = await startFloor({
      relayConnectionString: stack.relayConnectionString,
      relayEndpoint: stack.relayEndpoint,
      targetPort: echo.port,
    });
    closers.push(floor.close);
    const relay = await bareRelay();
    closers.push(relay.close);
    const bareSink = await bareBridge(relay.port, target.port);
    closers.push(bareSink.close);

    // Warm-up: streams opened, JIT compiled.
    await churn(echoPort!, 50);
    await churn(echo.port, 50);
    await churn(floor.port, 50);
    await throughput(sinkPort!, 4 * MiB, target.received);
    await throughput(bareSink.port, 4 * MiB, target.received);

    const directChurn = await churn(echo.port, churnCount);
    const cpuBeforeChurn = await agent.cpuMicros();
    const fullChurn = await churn(echoPort!, churnCount);
    const churnCpuMicros = (await agent.cpuMicros()) - cpuBeforeChurn;
    const floorChurn = await churn(floor.port, churnCount);
    const directRr = await requestResponse(echo.port, 20, rrSeconds);
    const fullRr = await requestResponse(echoPort!, 20, rrSeconds);
    const floorRr = await requestResponse(floor.port, 20, rrSeconds);
    const bareMBps = bulk / MiB / (await throughput(bareSink.port, bulk, target.received));
    const cpuBeforeBulk = await agent.cpuMicros();
    const fullMBps = bulk / MiB / (await throughput(sinkPort!, bulk, target.received));
    const bulkCpuMicros = (await agent.cpuMicros()) - cpuBeforeBulk;

    const group = "channels";
    const floorRow = (load: string, value: number, direct: number, tunnel: number, unit: string) => ({
      group,
      name: `  floor: ${load} through a minimal mux over the same relay, hops and processes`,
      value,
      unit,
      baseline: { name: "direct loopback", value: direct },
      note: `the forward above is ${((tunnel / value) * 100).toFixed(0)}% of this floor (bench/floor)`,
    });
    rows.push(
      {
        group,
        name: `connection churn through one forward: open + 64 B echo + close, sequential (n=${churnCount})`,
        value: fullChurn,
        unit: "conn/s",
        baseline: { name: "direct loopback", value: directChurn },
        target: ">= 1500 conn/s",
      },
      floorRow("the same churn", floorChurn, directChurn, fullChurn, "conn/s"),
      {
        group,
        name: `request/response, 20 connections x 64 B through one forward (${rrSeconds} s)`,
        value: fullRr,
        unit: "ops/s",
        baseline: { name: "direct loopback", value: directRr },
        target: ">= 2x the ratio before issue 15",
      },
      floorRow("the same request/response", floorRr, directRr, fullRr, "ops/s"),
      {
        group,
        name: `bulk one way through forward→relay→agent (${bulk / MiB} MiB, every byte verified)`,
        value: fullMBps,
        unit: "MiB/s",
        baseline: { name: "bare ws relay, same hops", value: bareMBps },
        target: ">= 90% of bare",
      },
      {
        group,
        name: "agent CPU per 1,000 channel opens (churn loop above, agent process)",
        value: (churnCpuMicros / 1000 / churnCount) * 1000,
        unit: "ms",
        note: "user + system of the agent process: open, 64 B each way, close, target dial",
      },
      {
        group,
        name: "agent CPU per GiB moved (bulk above, agent process)",
        value: (bulkCpuMicros / 1000) * (1024 / (bulk / MiB)),
        unit: "ms",
        target: "half of before issue 15",
        note: "user + system of the agent process",
      },
    );
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  }
  return rows;
};

export default suite;

/**
 * The cost of a channel (issue 15, point 4): connection churn, small request/response and bulk
 * through one `forward`, each beside the same load in the same run (direct on loopback, or the bare
 * ws relay with the same hops for bulk), and the agent's CPU per 1,000 channel opens and per GiB.
 * Churn and request/response also run through the floor (bench/floor): a minimal multiplexer over
 * the same relay, hops and processes, so the relay's share of the cost is told from the tunnel's.
 * The loads compared run interleaved in rounds (see interleaved). The agent runs with its default
 * settings in its own process, so process.cpuUsage() there is what a device owner pays; everything
 * else (control plane, relay and hub emulators, forward) runs here.
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

/** Units done in a span of wall time; rates are summed over rounds as units / seconds. */
interface Sample {
  units: number;
  seconds: number;
}

const since = (started: number): number => (performance.now() - started) / 1000;

/** Sequential short connections: connect, 64 B echoed, close. */
async function churn(port: number, count: number): Promise<Sample> {
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
  return { units: count, seconds: since(started) };
}

/** `connections` connections each doing 64 B request/response back to back, for `seconds`. */
async function requestResponse(port: number, connections: number, seconds: number): Promise<Sample> {
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
  const elapsed = since(started);
  await Promise.all(
    sockets.map((s) => {
      const closed = once(s, "close");
      s.end();
      return closed;
    }),
  );
  return { units: ops, seconds: elapsed };
}

/**
 * Runs the loads in turn, `rounds` times (a, b, c, a, b, c, ...), and returns each one's rate over
 * all its rounds. This machine's speed drifts within a run (direct loopback churn moved 2x within an
 * hour), and one block per load charged the drift to whichever load ran in the slow minute, which
 * made the ratios between loads (forward against floor, against bare) swing from run to run.
 */
async function interleaved<const T extends ReadonlyArray<() => Promise<Sample>>>(
  rounds: number,
  loads: T,
): Promise<{ [K in keyof T]: number }> {
  const totals = loads.map(() => ({ units: 0, seconds: 0 }));
  for (let r = 0; r < rounds; r++) {
    for (const [i, load] of loads.entries()) {
      const { units, seconds } = await load();
      totals[i]!.units += units;
      totals[i]!.seconds += seconds;
    }
  }
  return totals.map((t) => t.units / t.seconds) as { [K in keyof T]: number };
}

// ---- the suite ----

const suite: BenchSuite = async ({ quick }) => {
  const churnCount = quick ? 100 : 2000;
  const rrSeconds = quick ? 1 : 5;
  const bulk = quick ? 16 * MiB : 512 * MiB;
  const rounds = quick ? 2 : 4;
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
    for (const port of [echoPort!, echo.port, floor.port]) await churn(port, 50);
    await throughput(sinkPort!, 4 * MiB, target.received);
    await throughput(bareSink.port, 4 * MiB, target.received);

    // The agent's CPU counts only while the forward's load runs.
    const agentCpu = { churn: 0, bulk: 0 };
    const metered =
      (key: keyof typeof agentCpu, load: () => Promise<Sample>) => async (): Promise<Sample> => {
        const before = await agent.cpuMicros();
        const sample = await load();
        agentCpu[key] += (await agent.cpuMicros()) - before;
        return sample;
      };
    const perRound = churnCount / rounds;
    const [directChurn, fullChurn, floorChurn] = await interleaved(rounds, [
      () => churn(echo.port, perRound),
      metered("churn", () => churn(echoPort!, perRound)),
      () => churn(floor.port, perRound),
    ]);
    const [directRr, fullRr, floorRr] = await interleaved(rounds, [
      () => requestResponse(echo.port, 20, rrSeconds / rounds),
      () => requestResponse(echoPort!, 20, rrSeconds / rounds),
      () => requestResponse(floor.port, 20, rrSeconds / rounds),
    ]);
    const bulkRound = async (port: number): Promise<Sample> => ({
      units: bulk / rounds / MiB,
      seconds: await throughput(port, bulk / rounds, target.received),
    });
    const [bareMBps, fullMBps] = await interleaved(rounds, [
      () => bulkRound(bareSink.port),
      metered("bulk", () => bulkRound(sinkPort!)),
    ]);
    const churnCpuMicros = agentCpu.churn;
    const bulkCpuMicros = agentCpu.bulk;

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

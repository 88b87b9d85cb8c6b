/**
 * IoT Hub emulator: direct-method round trip and sustained call rate through the real SDKs, beside a
 * bare HTTPS round trip measured in the same run.
 *
 * The emulator (and the baseline HTTPS handler) run in a child process forked from this compiled
 * file, so the figures include real process boundaries. The service side (the control plane's
 * IotHubDirectMethodInvoker over azure-iothub, keep-alive) and the device side (azure-iot-device
 * clients over MQTTS, each answering at once) run in this process.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Agent, createServer, request } from "node:https";
import type { AddressInfo } from "node:net";
import { Client as DeviceClient } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { NoRetry } from "azure-iot-common";
import { generate } from "selfsigned";
import { startIotHubEmulator } from "../../emulators/iothub";
import { IotHubDirectMethodInvoker, createIotHubClients } from "../../shared/iothub";
import type { BenchOptions, BenchRow, BenchSuite } from "../types";

const CHILD_FLAG = "--iothub-bench-child";
const CONCURRENCY = 64;

interface Ready {
  type: "ready";
  serviceConnectionString: string;
  caPem: string;
  devices: string[];
  baselinePort: number;
  baselineCa: string;
}

// ---- child side ----

async function runChild(deviceCount: number): Promise<void> {
  // Log as the CLI does, so its cost is in the figures; the parent discards the child's stdout.
  const emulator = await startIotHubEmulator({
    mqttPort: 0,
    httpsPort: 0,
    log: (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`),
  });
  const devices: string[] = [];
  for (let i = 0; i < deviceCount; i++) devices.push(await emulator.createDevice(`bench-${i}`));
  // Baseline: the least an HTTPS JSON endpoint can do, with the same kind of (EC P-256) certificate.
  const pems = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    algorithm: "sha256",
    extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }] }],
  });
  const baseline = createServer(
    { cert: pems.cert, key: pems.private, keepAliveTimeout: 60_000 },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const payload = JSON.parse(Buffer.concat(chunks).toString() || "null") as unknown;
        res.writeHead(200, { "Content-Type": "application/json; charset=utf-8" });
        res.end(JSON.stringify({ status: 200, payload }));
      });
    },
  );
  baseline.listen(0, "127.0.0.1");
  await once(baseline, "listening");
  const ready: Ready = {
    type: "ready",
    serviceConnectionString: emulator.serviceConnectionString,
    caPem: emulator.caPem,
    devices,
    baselinePort: (baseline.address() as AddressInfo).port,
    baselineCa: pems.cert,
  };
  process.send?.(ready);
  process.once("disconnect", () => {
    baseline.closeAllConnections();
    baseline.close();
    void emulator.close().then(() => process.exit(0));
  });
}

// ---- parent side ----

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function sequential(count: number, op: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await op();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b);
}

/** Calls/s with `concurrency` callers looping for `durationMs`. */
async function sustained(durationMs: number, concurrency: number, op: (i: number) => Promise<unknown>) {
  const end = performance.now() + durationMs;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = worker; performance.now() < end; i += concurrency) {
        await op(i);
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

async function startChild(deviceCount: number): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = fork(__filename, [CHILD_FLAG, String(deviceCount)], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const [message] = (await Promise.race([
    once(child, "message"),
    once(child, "exit").then(() => {
      throw new Error("the emulator child exited before it was ready");
    }),
  ])) as [Ready];
  return { child, ready: message };
}

const suite: BenchSuite = async (options: BenchOptions): Promise<BenchRow[]> => {
  const deviceCount = options.quick ? 20 : 100;
  const latencyCalls = options.quick ? 200 : 1000;
  const durationMs = options.quick ? 2000 : 5000;
  const { child, ready } = await startChild(deviceCount);
  const devices: DeviceClient[] = [];
  try {
    // Devices connect ten at a time, as a fleet would trickle in.
    for (let i = 0; i < ready.devices.length; i += 10) {
      await Promise.all(
        ready.devices.slice(i, i + 10).map(async (cs) => {
          const device = DeviceClient.fromConnectionString(cs, Mqtt);
          device.on("error", () => undefined);
          device.setRetryPolicy(new NoRetry());
          await device.setOptions({ ca: ready.caPem });
          await device.open();
          device.onDeviceMethod("echo", (req, res) => void res.send(200, req.payload));
          devices.push(device);
        }),
      );
    }
    const { client } = createIotHubClients({
      connectionString: ready.serviceConnectionString,
      ca: ready.caPem,
    });
    const invoker = new IotHubDirectMethodInvoker(client);
    const invoke = (i: number) =>
      invoker.invoke(
        { deviceId: `bench-${i % deviceCount}` },
        // connectTimeout lets the first call to each device wait for its lazy method subscription.
        { methodName: "echo", payload: { i }, responseTimeoutInSeconds: 30, connectTimeoutInSeconds: 10 },
      );
    for (let i = 0; i < deviceCount; i++) await invoke(i); // warm-up: every device subscribed, sockets open

    const agent = new Agent({ keepAlive: true });
    const raw = (i: number) =>
      new Promise<void>((resolve, reject) => {
        const body = JSON.stringify({ methodName: "echo", payload: { i }, responseTimeoutInSeconds: 30 });
        const req = request(
          {
            host: "localhost",
            port: ready.baselinePort,
            method: "POST",
            path: "/twins/x/methods",
            agent,
            ca: ready.baselineCa,
            headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve());
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    for (let i = 0; i < 50; i++) await raw(i);

    const methodTimes = await sequential(latencyCalls, () => invoke(0));
    const rawTimes = await sequential(latencyCalls, () => raw(0));
    const methodRate = await sustained(durationMs, CONCURRENCY, invoke);
    const rawRate = await sustained(durationMs, CONCURRENCY, raw);
    agent.destroy();

    const conditions = `${deviceCount} devices connected, keep-alive`;
    return [
      {
        group: "iothub emulator",
        name: `direct method round trip p50 (adapter → emulator → device SDK, 1 caller, ${conditions})`,
        value: percentile(methodTimes, 50),
        unit: "ms",
        baseline: { name: "HTTPS POST to a trivial handler, p50", value: percentile(rawTimes, 50) },
        target: "<= 5 ms",
      },
      {
        group: "iothub emulator",
        name: `direct method round trip p99 (1 caller, ${conditions})`,
        value: percentile(methodTimes, 99),
        unit: "ms",
        baseline: { name: "HTTPS POST to a trivial handler, p99", value: percentile(rawTimes, 99) },
      },
      {
        group: "iothub emulator",
        name: `direct method calls/s sustained (${CONCURRENCY} in flight over ${conditions})`,
        value: methodRate,
        unit: "calls/s",
        baseline: { name: `trivial HTTPS POSTs/s, ${CONCURRENCY} in flight`, value: rawRate },
        target: ">= 500/s",
        note: "service and devices share this process; emulator in a child process",
      },
    ];
  } finally {
    await Promise.all(devices.map((d) => d.close().catch(() => undefined)));
    const exited = once(child, "exit");
    child.disconnect();
    await exited;
  }
};

export default suite;

if (require.main === module && process.argv[2] === CHILD_FLAG) {
  runChild(Number(process.argv[3] ?? "100")).catch((err: unknown) => {
    process.stderr.write(
      `iothub bench child: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}

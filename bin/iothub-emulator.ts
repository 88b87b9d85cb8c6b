#!/usr/bin/env node
/** `iothub-emulator [--mqtt-port 8883] [--https-port 8443] [--host 127.0.0.1] [--hub-name N] [--state-dir D]` */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describeRunning, parseIotHubEmulatorArgs } from "../emulators/iothub/cli";
import { dialableHost } from "../emulators/iothub/hub";
import { startIotHubEmulator } from "../emulators/iothub";

async function main(): Promise<void> {
  const parsed = parseIotHubEmulatorArgs(process.argv.slice(2));
  if (parsed.kind === "exit") {
    (parsed.code === 0 ? process.stdout : process.stderr).write(parsed.output);
    process.exitCode = parsed.code;
    return;
  }
  const stateDir = path.resolve(parsed.options.stateDir);
  const emulator = await startIotHubEmulator({
    ...parsed.options,
    stateDir,
    log: (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`),
  });
  // The connection string carries the (public, development-only) key: a file, not the terminal.
  const serviceConnectionStringPath = path.join(stateDir, "service-connection-string.txt");
  await writeFile(serviceConnectionStringPath, emulator.serviceConnectionString + "\n", { mode: 0o600 });
  const host = dialableHost(parsed.options.host);
  process.stdout.write(
    describeRunning({
      hubName: emulator.hubName,
      hubHostName: emulator.hubHostName,
      mqttUrl: `mqtts://${host}:${emulator.mqttPort}`,
      httpsUrl: `https://${host}:${emulator.httpsPort}`,
      stateDir,
      caPath: emulator.caPath,
      serviceConnectionStringPath,
    }),
  );
  const stop = (): void => {
    void emulator.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`iothub-emulator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

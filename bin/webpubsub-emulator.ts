#!/usr/bin/env node
/** `webpubsub-emulator [--port 8080] [--host 127.0.0.1] [--access-key K] [--event-handler hub=url]...` */
import { parseCli } from "../emulators/webpubsub/cli";
import { startWebPubSubEmulator } from "../emulators/webpubsub";

async function main(): Promise<void> {
  const parsed = parseCli(process.argv.slice(2));
  if (parsed.kind === "exit") {
    (parsed.code === 0 ? process.stdout : process.stderr).write(parsed.output);
    process.exitCode = parsed.code;
    return;
  }
  const emulator = await startWebPubSubEmulator({
    ...parsed.options,
    logger: (line) => process.stderr.write(`webpubsub-emulator: ${line}\n`),
  });
  // The key stays out of this line; the connection string is for whoever configured it.
  process.stdout.write(
    `Web PubSub emulator listening on ${emulator.endpoint} (client: ${emulator.endpoint.replace("http", "ws")}/client/hubs/{hub})\n`,
  );
  const stop = (): void => {
    void emulator.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`webpubsub-emulator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

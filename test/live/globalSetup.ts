/** `npm run test:live` checks its configuration once, before any test: incomplete means fail, not skip. */
import { liveConfigFromEnv, targetKind } from "./config";

export default function globalSetup(): void {
  if (targetKind() === "live") liveConfigFromEnv(process.env);
}

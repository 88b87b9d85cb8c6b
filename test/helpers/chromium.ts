/**
 * Debian's headless Chromium through playwright-core, as the browser end-to-end tests run it: a
 * fresh profile each time, no sandbox (containers), no background traffic, no QUIC.
 */
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, type Page, chromium } from "playwright-core";
import { withDeadline } from "./events";

export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface Chromium {
  context: BrowserContext;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Chromium> {
  const profile = await mkdtemp(join(tmpdir(), "e2e-chromium-"));
  // A fresh user-data-dir: playwright takes it as launchPersistentContext's first argument.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
  });
  return {
    context,
    close: async () => {
      // A close once held a test file's afterAll past its 120 s on a loaded machine; bounded here,
      // then the browser's processes are killed, so one stuck browser cannot fail a whole suite.
      const closed = await withDeadline(context.close(), 20_000, "Chromium to close").then(
        () => true,
        () => false,
      );
      if (!closed) await killProcessesOf(profile);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** SIGKILL to every process whose command line names `profile` (its --user-data-dir). */
async function killProcessesOf(profile: string): Promise<void> {
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes(profile)) continue;
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // Gone already.
    }
  }
}

/** A new page that records every failed request (network error or HTTP >= 400) and every finished one. */
export async function watchedPage(
  context: BrowserContext,
): Promise<{ page: Page; failed: string[]; finished: string[] }> {
  const page = await context.newPage();
  const failed: string[] = [];
  const finished: string[] = [];
  page.on("requestfailed", (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) failed.push(`${r.url()}: HTTP ${r.status()}`);
  });
  page.on("requestfinished", (r) => finished.push(r.url()));
  return { page, failed, finished };
}

/**
 * The installed client (issue 17): the apparent size of the tree `npm install --omit=dev` puts
 * under node_modules from the client's tarball (the optional @azure/identity not installed, as a
 * device owner gets it), and its package count. Floor, in the full run: the IoT device SDK and its
 * MQTT transport installed alone, which the agent cannot do without.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { installPackages, installTarballs, installedTree, packClient } from "../../deploy/pack";
import type { BenchSuite } from "../types";

const REPO = resolve(__dirname, "..", "..", "..");
const MB = 1e6;
const FLOOR_PACKAGES = ["azure-iot-device", "azure-iot-device-mqtt"];

const suite: BenchSuite = async ({ quick }) => {
  const work = await mkdtemp(join(tmpdir(), "bench-client-package-"));
  try {
    const tarball = await packClient(REPO, join(work, "packs"));
    await installTarballs(join(work, "client"), [tarball]);
    const client = await installedTree(join(work, "client"));
    let floor: Awaited<ReturnType<typeof installedTree>> | undefined;
    if (!quick) {
      const { dependencies } = JSON.parse(readFileSync(join(REPO, "client", "package.json"), "utf8")) as {
        dependencies: Record<string, string>;
      };
      await installPackages(
        join(work, "floor"),
        FLOOR_PACKAGES.map((p) => `${p}@${dependencies[p]}`),
      );
      floor = await installedTree(join(work, "floor"));
    }
    const floorName = `floor: ${FLOOR_PACKAGES.join(" + ")} installed alone`;
    const group = "client package";
    const dependencies = client.names.length - 1; // the client itself is not its own dependency
    return [
      {
        group,
        name: "installed client, apparent size (npm install --omit=dev of the tarball, no @azure/identity)",
        value: client.bytes / MB,
        unit: "MB",
        ...(floor ? { baseline: { name: floorName, value: floor.bytes / MB } } : {}),
        target: "<= 40 MB",
        note: `${client.files} files; sum of file sizes (du -sb also counts directories); 1 MB = 10^6 bytes`,
      },
      {
        group,
        name: "installed client, dependencies (packages under node_modules, nested copies counted)",
        value: dependencies,
        unit: "packages",
        ...(floor ? { baseline: { name: floorName, value: floor.names.length } } : {}),
      },
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
};

export default suite;

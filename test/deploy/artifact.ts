// The deployable artifact as azd ships it: built by `npm run package`'s code, zipped, and unzipped
// into an empty directory that has no node_modules above it that holds anything.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { type Artifact, buildArtifact, zipArtifact } from "../../deploy/package";

export const REPO = resolve(__dirname, "..", "..");
export const run = promisify(execFile);

export interface Unpacked {
  artifact: Artifact;
  zipBytes: number;
  /** The unzipped artifact. */
  dir: string;
  /** devstack/functionsCore.ts bundled on its own, outside the artifact and the repository. */
  harness: string;
  cleanup(): Promise<void>;
}

export async function unpackedArtifact(): Promise<Unpacked> {
  const work = await mkdtemp(join(tmpdir(), "artifact-"));
  const artifact = await buildArtifact(REPO, join(work, "build"));
  const zip = join(work, "api.zip");
  const zipBytes = zipArtifact(artifact.dir, zip);
  const dir = join(work, "unpacked");
  await run("unzip", ["-q", zip, "-d", dir]);
  const harness = join(work, "harness", "functionsCore.js");
  await build({
    absWorkingDir: REPO,
    entryPoints: ["devstack/functionsCore.ts"],
    outfile: harness,
    bundle: true,
    platform: "node",
    format: "cjs",
    logLevel: "silent",
  });
  return { artifact, zipBytes, dir, harness, cleanup: () => rm(work, { recursive: true, force: true }) };
}

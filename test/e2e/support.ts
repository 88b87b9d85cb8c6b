/**
 * End-to-end support: the built CLI (dist/), real child processes that are always killed (each in
 * its own process group, so ssh's ProxyCommand goes too), and a throw-away OpenSSH server.
 */
import { type ChildProcess, execFile, spawn, type SpawnOptions } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync, watch, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile, chmod } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Recorder, deferred, withDeadline } from "../helpers/events";

export const REPO = resolve(__dirname, "..", "..");
export const CLI_JS = join(REPO, "dist", "bin", "devicestream.js");
const BUILT_MARK = join(REPO, "dist", ".e2e-built");
const LOCK = join(REPO, "dist.e2e-build.lock");
const SOURCES = ["common", "shared", "client", "bin", "devstack", "emulators", "functions", "bench"];

export const run = promisify(execFile);
export const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function isFresh(): boolean {
  if (!existsSync(BUILT_MARK) || !existsSync(CLI_JS)) return false;
  const built = statSync(BUILT_MARK).mtimeMs;
  return SOURCES.every((dir) => !existsSync(join(REPO, dir)) || newestSource(join(REPO, dir)) <= built);
}

/** Resolves once LOCK is gone (another jest worker finished building). */
async function lockReleased(ms: number): Promise<void> {
  const gone = deferred();
  const watcher = watch(REPO, () => {
    if (!existsSync(LOCK)) gone.resolve();
  });
  try {
    if (!existsSync(LOCK)) gone.resolve();
    await withDeadline(gone.promise, ms, "another worker's build");
  } finally {
    watcher.close();
  }
}

/**
 * `npm test` does not build: build dist/ with tsconfig.build.json when it is missing or older than
 * the sources. One jest worker builds (a lock directory), the others wait for it.
 */
export async function ensureBuilt(): Promise<void> {
  for (;;) {
    if (isFresh()) return;
    try {
      mkdirSync(LOCK);
    } catch {
      await lockReleased(240_000);
      continue;
    }
    try {
      const started = Date.now();
      await run(
        process.execPath,
        [join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
        {
          cwd: REPO,
        },
      );
      writeFileSync(BUILT_MARK, new Date().toISOString());
      console.log(`e2e: built dist/ in ${Date.now() - started} ms`);
      return;
    } finally {
      rmdirSync(LOCK);
    }
  }
}

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until stdout+stderr match (rejects early if the process exits first). */
  waitFor(pattern: RegExp, what: string, ms?: number): Promise<RegExpExecArray>;
}

const children = new Set<Child>();

/** Spawns in a new process group; killAll() ends the whole group. */
export function start(command: string, args: string[], options: SpawnOptions = {}): Child {
  const proc = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"], detached: true, ...options });
  const out: string[] = [];
  const err: string[] = [];
  const any = new Recorder<string>();
  proc.stdout?.setEncoding("utf8").on("data", (t: string) => (out.push(t), any.push(t)));
  proc.stderr?.setEncoding("utf8").on("data", (t: string) => (err.push(t), any.push(t)));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    proc.once("close", (code, signal) => done({ code, signal })),
  );
  const text = () => any.items.join("");
  const child: Child = {
    proc,
    exit,
    stdout: () => out.join(""),
    stderr: () => err.join(""),
    async waitFor(pattern, what, ms = 30_000) {
      const died = exit.then(({ code, signal }) => {
        throw new Error(`${what}: exited (${code ?? signal}) first:\n${text().slice(-2000)}`);
      });
      died.catch(() => undefined);
      await Promise.race([
        any
          .waitFor((items) => pattern.test(items.join("")), what, ms)
          .catch((e: Error) => {
            throw new Error(`${e.message}; output so far:\n${text().slice(-2000)}`);
          }),
        died,
      ]);
      return pattern.exec(text())!;
    },
  };
  children.add(child);
  void exit.then(() => children.delete(child));
  return child;
}

/** The CLI as a real process. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = tmpdir()): Child {
  return start(process.execPath, [CLI_JS, ...args], { cwd, env: { ...process.env, ...env } });
}

export async function stop(child: Child, signal: NodeJS.Signals = "SIGTERM", ms = 15_000) {
  if (child.proc.exitCode === null && child.proc.signalCode === null) {
    try {
      process.kill(-child.proc.pid!, signal);
    } catch {
      // already gone
    }
  }
  return withDeadline(child.exit, ms, `${child.proc.spawnargs.join(" ").slice(0, 80)} to exit`);
}

/** Kills every child still running (whole process groups) and waits for them. */
export async function killAll(): Promise<void> {
  await Promise.all([...children].map((c) => stop(c, "SIGKILL")));
}

/** True while some process of the group still exists. */
export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Sshd {
  port: number;
  dir: string;
  /** Private key authorised for the current user. */
  key: string;
  child: Child;
  /** ssh options that make the client non-interactive and trust-on-nothing. */
  clientOptions: string[];
  close(): Promise<void>;
}

/** An sshd on a free loopback port with a temporary host key and authorised key. */
export async function startSshd(): Promise<Sshd> {
  const dir = await mkdtemp(join(tmpdir(), "e2e-sshd-"));
  await chmod(dir, 0o700);
  const hostKey = join(dir, "host_ed25519");
  const key = join(dir, "client_ed25519");
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
  const authorized = join(dir, "authorized_keys");
  await writeFile(authorized, await readFile(`${key}.pub`), { mode: 0o600 });
  const port = await freePort();
  const config = join(dir, "sshd_config");
  await writeFile(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "PermitRootLogin prohibit-password",
      "UsePAM no",
      "StrictModes no",
      "Subsystem sftp internal-sftp",
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  // sshd insists on its privilege-separation directory existing.
  if (!existsSync("/run/sshd")) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const child = start("/usr/sbin/sshd", ["-D", "-e", "-f", config]);
  await child.waitFor(/Server listening on 127\.0\.0\.1 port \d+/, "sshd to listen", 15_000);
  return {
    port,
    dir,
    key,
    child,
    clientOptions: [
      "-i",
      key,
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "LogLevel=ERROR",
    ],
    async close() {
      await stop(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A random file of `bytes` bytes in `dir`; returns its sha256. */
export async function randomFile(dir: string, name: string, bytes: number): Promise<string> {
  const data = randomBytes(bytes);
  await writeFile(join(dir, name), data);
  return sha256(data);
}

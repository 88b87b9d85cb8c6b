/**
 * What `devicestream --verbose` reports as left open: the probe itself (real handles of this
 * process) and how runCli prints what the bin's probe returns.
 */
import { type AddressInfo, type Socket, connect, createServer } from "node:net";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { tmpdir } from "node:os";
import { openHandles } from "../../client/cli/handles";
import { type CliIo, runCli } from "../../client/cli/program";
import { EXIT } from "../../client/cli/exitCodes";

describe("openHandles", () => {
  it("names a listening server and a connected socket by address, and forgets them once closed", async () => {
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    const accepted = once(server, "connection") as Promise<[Socket]>;
    const client = connect(port, "127.0.0.1");
    await once(client, "connect");
    const [peer] = await accepted;
    const open = openHandles();
    expect(open).toContain(`Server 127.0.0.1:${port}`);
    expect(open).toContain(`Socket 127.0.0.1:${client.localPort} -> 127.0.0.1:${port}`);
    // What the caller excludes (the bin: its stdio) is not reported.
    expect(openHandles([client])).not.toContain(`Socket 127.0.0.1:${client.localPort} -> 127.0.0.1:${port}`);

    const localPort = client.localPort;
    client.destroy();
    peer.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const after = openHandles();
    expect(after).not.toContain(`Server 127.0.0.1:${port}`);
    expect(after).not.toContain(`Socket 127.0.0.1:${localPort} -> 127.0.0.1:${port}`);
  });

  it("counts referenced timers, not unreferenced ones", () => {
    const timers = () => openHandles().filter((h) => h === "Timeout").length;
    const before = timers();
    const unrefd = setTimeout(() => undefined, 60_000).unref();
    expect(timers()).toBe(before);
    const refd = setTimeout(() => undefined, 60_000);
    expect(timers()).toBe(before + 1);
    clearTimeout(refd);
    clearTimeout(unrefd);
    expect(timers()).toBe(before);
  });
});

describe("devicestream --verbose", () => {
  function run(args: string[], open: string[]) {
    const err: Buffer[] = [];
    const stderr = new PassThrough().on("data", (b: Buffer) => err.push(b));
    const probe = jest.fn(() => Promise.resolve(open));
    const io: CliIo = {
      stdin: new PassThrough(),
      stdout: new PassThrough().resume(),
      stderr,
      env: {},
      cwd: tmpdir(),
      signal: new AbortController().signal,
      openHandles: probe,
    };
    return { code: runCli(args, io), stderr: () => Buffer.concat(err).toString(), probe };
  }
  const sas = ["sas", "--policy", "p", "--key", "a2V5", "--resource", "r"];

  it("says what is still open once the command is over", async () => {
    const r = run([...sas, "--verbose"], ["Socket 127.0.0.1:1 -> 127.0.0.1:2", "Timeout"]);
    expect(await r.code).toBe(EXIT.ok);
    expect(r.stderr()).toBe(
      "devicestream: debug: still open after the command: Socket 127.0.0.1:1 -> 127.0.0.1:2, Timeout\n",
    );
  });

  it("says when nothing is, also after a failed command, with -v before the command", async () => {
    const r = run(["-v", "sas", "--policy", "p", "--key", "a2V5"], []);
    expect(await r.code).toBe(EXIT.usage);
    expect(r.stderr()).toMatch(/^devicestream: .*\ndevicestream: debug: nothing left open\n$/);
  });

  it("without --verbose, does not look", async () => {
    const r = run(sas, ["Timeout"]);
    expect(await r.code).toBe(EXIT.ok);
    expect(r.probe).not.toHaveBeenCalled();
    expect(r.stderr()).toBe("");
  });
});

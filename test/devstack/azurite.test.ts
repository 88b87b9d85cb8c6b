import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TableClient } from "@azure/data-tables";
import { startAzuriteTable } from "../../devstack/azurite";
import { PortInUseError } from "../../devstack/ports";
import { useAzurite } from "../helpers/azurite";

jest.setTimeout(15_000);

function client(connectionString: string, table: string): TableClient {
  return TableClient.fromConnectionString(connectionString, table, { allowInsecureConnection: true });
}

describe("Azurite table service in process", () => {
  const azurite = useAzurite();

  it("starts on a free port with the development account", () => {
    const { tableEndpoint, connectionString, port } = azurite();
    expect(port).toBeGreaterThan(0);
    expect(tableEndpoint).toBe(`http://127.0.0.1:${port}/devstoreaccount1`);
    expect(connectionString).toContain(`TableEndpoint=${tableEndpoint};`);
    expect(connectionString).toContain("AccountName=devstoreaccount1;");
  });

  it("serves the real @azure/data-tables client: create a table, insert and read an entity", async () => {
    const table = client(azurite().connectionString, "streams");
    await table.createTable();
    await table.createEntity({ partitionKey: "dev~231", rowKey: "s1", state: "Requested", bytes: 42 });
    const entity = await table.getEntity<{ state: string; bytes: number }>("dev~231", "s1");
    expect(entity).toMatchObject({ partitionKey: "dev~231", rowKey: "s1", state: "Requested", bytes: 42 });
    expect(entity.etag).toEqual(expect.any(String));
    // Conditional updates are what the stream store relies on: a stale ETag must fail with 412.
    await table.updateEntity({ partitionKey: "dev~231", rowKey: "s1", state: "Accepted" }, "Merge", {
      etag: entity.etag,
    });
    await expect(
      table.updateEntity({ partitionKey: "dev~231", rowKey: "s1", state: "Closed" }, "Merge", {
        etag: entity.etag,
      }),
    ).rejects.toMatchObject({ statusCode: 412 });
  });
});

describe("Azurite table service start-up", () => {
  it("names a taken port", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const attempt = startAzuriteTable({ port });
      await expect(attempt).rejects.toThrow(PortInUseError);
      await expect(attempt).rejects.toThrow(`Azurite table service: 127.0.0.1:${port} is already in use`);
    } finally {
      blocker.close();
    }
  });

  it("keeps tables across a restart when given a directory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "azurite-"));
    try {
      const first = await startAzuriteTable({ port: 0, persistDir: dir });
      await client(first.connectionString, "kept").createTable();
      await client(first.connectionString, "kept").createEntity({ partitionKey: "p", rowKey: "r", n: 1 });
      await first.close();

      const second = await startAzuriteTable({ port: 0, persistDir: dir });
      try {
        const entity = await client(second.connectionString, "kept").getEntity<{ n: number }>("p", "r");
        expect(entity.n).toBe(1);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

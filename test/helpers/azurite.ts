import { startAzuriteTable, type AzuriteTable } from "../../devstack/azurite";

/**
 * One in-memory Azurite table service per test file, on a free port. Call at the top level of a
 * test file; the returned function gives the running instance inside tests.
 */
export function useAzurite(): () => AzuriteTable {
  let azurite: AzuriteTable | undefined;
  beforeAll(async () => {
    azurite = await startAzuriteTable({ port: 0 });
  }, 30_000);
  afterAll(async () => {
    await azurite?.close();
  }, 30_000);
  return () => {
    if (!azurite)
      throw new Error("useAzurite(): Azurite is not running (call it at the top level of the file)");
    return azurite;
  };
}

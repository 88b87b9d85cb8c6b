/**
 * The service SDK's index exports the gateway's ticket functions, and the agent and `connect` load
 * that index: jose must load only when a ticket is signed or checked, not with the index.
 */
it("loading the service SDK does not load jose; signing a ticket does", async () => {
  let loaded = false;
  jest.doMock("jose", () => {
    loaded = true;
    return jest.requireActual("jose");
  });
  let sdk!: typeof import("../../client/sdk/service");
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    sdk = require("../../client/sdk/service") as typeof import("../../client/sdk/service");
  });
  expect(loaded).toBe(false);
  const ticket = await sdk.issueTicket(Buffer.alloc(32, 1), { deviceId: "Dev-1", streamName: "web" });
  expect(ticket.split(".")).toHaveLength(3);
  expect(loaded).toBe(true);
});

import { routeTableOf, scheduleIntervalMs } from "../../devstack/functionsApp";
import type { RegisteredFunction } from "../../devstack/functionsCore";

describe("timer schedules the local host can run", () => {
  it.each([
    ["*/10 * * * * *", 10_000],
    ["* * * * * *", 1_000],
    ["0 */5 * * * *", 300_000],
    ["0 * * * * *", 60_000],
  ])("%s every %d ms", (schedule, ms) => expect(scheduleIntervalMs(schedule)).toBe(ms));

  it.each(["0 0 * * * *", "*/10 * * * *", "0 30 9 * * 1-5", "*/x * * * * *"])("refuses %s", (schedule) =>
    expect(() => scheduleIntervalMs(schedule)).toThrow(/the local host runs only/),
  );
});

describe("a registered app as a route table", () => {
  const http: RegisteredFunction = {
    name: "hello",
    bindings: {
      httpTrigger1: {
        type: "httpTrigger",
        direction: "in",
        authLevel: "anonymous",
        methods: ["GET"],
        route: "hi",
      },
      $return: { type: "http", direction: "out" },
    },
    handler: async () => ({ status: 200, body: process.env.GREETING }),
  };
  const timer: RegisteredFunction = {
    name: "tick",
    bindings: { timerTrigger1: { type: "timerTrigger", direction: "in", schedule: "*/10 * * * * *" } },
    handler: async () => undefined,
  };

  it("serves the registered routes and timers, handing the app its settings first", async () => {
    let applied = 0;
    const table = routeTableOf([http, timer], () => {
      applied++;
      process.env.GREETING = "hello from settings";
    });
    expect(table.http.map(({ name, methods, route }) => ({ name, methods, route }))).toEqual([
      { name: "hello", methods: ["GET"], route: "hi" },
    ]);
    expect(table.timers.map(({ name, schedule, intervalMs }) => ({ name, schedule, intervalMs }))).toEqual([
      { name: "tick", schedule: "*/10 * * * * *", intervalMs: 10_000 },
    ]);
    const response = await table.http[0]!.handler({} as never, {} as never);
    expect(response).toEqual({ status: 200, body: "hello from settings" });
    expect(applied).toBe(1);
    delete process.env.GREETING;
  });

  it("refuses a trigger the local host cannot run", () => {
    const queue: RegisteredFunction = {
      name: "q",
      bindings: { t: { type: "queueTrigger", direction: "in" } },
      handler: async () => undefined,
    };
    expect(() => routeTableOf([queue], () => undefined)).toThrow(
      "function 'q': the local host does not run queueTrigger triggers",
    );
  });
});

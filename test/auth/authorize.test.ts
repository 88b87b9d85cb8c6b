import { ApiError } from "../../shared/errors";
import {
  authorize,
  compileGrant,
  isAllowed,
  streamNameFilter,
  type AuthorizationTarget,
  type GrantSpec,
} from "../../shared/auth/authorize";
import { compileDevicePattern, compileGlob, GlobSyntaxError } from "../../shared/auth/glob";
import {
  callerKey,
  describePrincipal,
  openedBy,
  streamLimit,
  type Action,
  type Principal,
} from "../../shared/auth/principal";

function sas(...specs: GrantSpec[]): Principal {
  return { kind: "sas", policyName: "p", grants: specs.map((s, i) => compileGrant(`grant ${i}`, s)) };
}

describe("glob", () => {
  it.each<[string, string, boolean]>([
    ["*", "", true],
    ["*", "anything at all", true],
    ["dev-*", "dev-1", true],
    ["dev-*", "dev-", true],
    ["dev-*", "Dev-1", false], // case-sensitive, like IoT Hub IDs
    ["dev-?", "dev-1", true],
    ["dev-?", "dev-12", false],
    ["dev-?", "dev-", false],
    ["*-edge-*", "plant1-edge-07", true],
    ["*-edge-*", "plant1-edg-07", false],
    ["a*b*c", "aXXbYYc", true],
    ["a*b*c", "aXXcYYb", false],
    ["**", "x", true],
    ["sensor\\*", "sensor*", true],
    ["sensor\\*", "sensor1", false],
    ["what\\?", "what?", true],
    ["what\\?", "whatX", false],
    ["back\\\\slash", "back\\slash", true],
    ["ü?", "üß", true], // one code point, not one UTF-16 unit
    ["?", "😀", true],
    ["exact", "exact", true],
    ["exact", "exactly", false],
    ["ssh", "ssh", true],
  ])("%p matches %p: %p", (pattern, value, expected) => {
    expect(compileGlob(pattern).matches(value)).toBe(expected);
  });

  it("stays fast on a pathological pattern", () => {
    // A backtracking RegExp would take exponential time here; the matcher is O(pattern × value).
    const glob = compileGlob(`${"*a".repeat(30)}b`);
    expect(glob.matches("a".repeat(5000))).toBe(false);
  });

  it.each([
    ["", /empty/],
    ["dev\\", /lone '\\'/],
  ])("refuses the glob %p", (pattern, message) => {
    expect(() => compileGlob(pattern)).toThrow(GlobSyntaxError);
    expect(() => compileGlob(pattern)).toThrow(message);
  });

  it.each([
    ["a/b/c", /more than one '\/'/],
    ["/m", /device and a module part/],
    ["d/", /device and a module part/],
    ["", /empty/],
  ])("refuses the device pattern %p", (pattern, message) => {
    expect(() => compileDevicePattern(pattern)).toThrow(message);
  });
});

describe("device patterns", () => {
  it.each<[string, AuthorizationTarget, boolean]>([
    ["*", { deviceId: "d1" }, true],
    ["*", { deviceId: "d1", moduleId: "m1" }, false], // device patterns never grant modules
    ["*/*", { deviceId: "d1", moduleId: "m1" }, true],
    ["*/*", { deviceId: "d1" }, false],
    ["d1/*", { deviceId: "d1", moduleId: "edgeAgent" }, true],
    ["d1/*", { deviceId: "d2", moduleId: "edgeAgent" }, false],
    ["*/edge?gent", { deviceId: "x", moduleId: "edgeAgent" }, true],
    ["gw-*/proxy", { deviceId: "gw-7", moduleId: "proxy" }, true],
    ["gw-*/proxy", { deviceId: "gw-7", moduleId: "proxy2" }, false],
    ["dev\\/x", { deviceId: "dev/x" }, true], // an escaped slash is a character, not a separator
    ["dev#1", { deviceId: "dev#1" }, true], // IoT Hub IDs may hold characters URLs treat specially
  ])("%p against %p: %p", (pattern, target, expected) => {
    expect(compileDevicePattern(pattern).matches(target)).toBe(expected);
  });
});

describe("authorize", () => {
  const operator = sas({ devices: ["plant1-*"], streams: ["ssh", "rdp"] });
  const reader = sas({ devices: ["*"], streams: ["*"], actions: ["list", "show"] });
  const mixed = sas(
    { devices: ["lab-*"], streams: ["ssh"], actions: ["open", "close"] },
    { devices: ["lab-*"], streams: ["*"], actions: ["list", "show"] },
    { devices: ["lab-1/*"], streams: ["debug-*"] },
  );

  it.each<[string, Principal, Action, AuthorizationTarget, boolean]>([
    ["operator opens ssh on its plant", operator, "open", { deviceId: "plant1-a", streamName: "ssh" }, true],
    ["operator opens rdp", operator, "open", { deviceId: "plant1-a", streamName: "rdp" }, true],
    [
      "operator opens an unlisted stream",
      operator,
      "open",
      { deviceId: "plant1-a", streamName: "vnc" },
      false,
    ],
    ["operator on another plant", operator, "open", { deviceId: "plant2-a", streamName: "ssh" }, false],
    [
      "operator on a module",
      operator,
      "open",
      { deviceId: "plant1-a", moduleId: "m", streamName: "ssh" },
      false,
    ],
    ["operator lists (all actions by default)", operator, "list", { deviceId: "plant1-a" }, true],
    ["operator closes", operator, "close", { deviceId: "plant1-a", streamName: "ssh" }, true],
    ["operator shows", operator, "show", { deviceId: "plant1-a", streamName: "rdp" }, true],
    ["reader lists", reader, "list", { deviceId: "any" }, true],
    ["reader shows", reader, "show", { deviceId: "any", streamName: "x" }, true],
    ["reader may not open", reader, "open", { deviceId: "any", streamName: "x" }, false],
    ["reader may not close", reader, "close", { deviceId: "any", streamName: "x" }, false],
    ["reader may not touch modules", reader, "list", { deviceId: "any", moduleId: "m" }, false],
    ["mixed opens ssh on lab", mixed, "open", { deviceId: "lab-2", streamName: "ssh" }, true],
    ["mixed may not open scp on lab", mixed, "open", { deviceId: "lab-2", streamName: "scp" }, false],
    ["mixed shows anything on lab", mixed, "show", { deviceId: "lab-2", streamName: "scp" }, true],
    [
      "mixed opens debug on lab-1 modules",
      mixed,
      "open",
      { deviceId: "lab-1", moduleId: "m", streamName: "debug-x" },
      true,
    ],
    [
      "mixed may not open debug on lab-1 itself",
      mixed,
      "open",
      { deviceId: "lab-1", streamName: "debug-x" },
      false,
    ],
    ["no grants at all", sas(), "list", { deviceId: "d" }, false],
  ])("%s", (_label, principal, action, target, expected) => {
    expect(isAllowed(principal, action, target)).toBe(expected);
    if (expected) {
      expect(() => authorize(principal, action, target)).not.toThrow();
    } else {
      let thrown: unknown;
      try {
        authorize(principal, action, target);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ApiError);
      expect((thrown as ApiError).statusCode).toBe(403);
      expect((thrown as ApiError).code).toBe("Forbidden");
    }
  });

  it("says who may not do what, where", () => {
    expect(() => authorize(operator, "open", { deviceId: "plant2-a", streamName: "ssh" })).toThrow(
      "SAS policy 'p' may not open stream 'ssh' on device 'plant2-a'.",
    );
    expect(() => authorize(reader, "close", { deviceId: "d", moduleId: "m" })).toThrow(
      "SAS policy 'p' may not close streams on module 'm' of device 'd'.",
    );
  });

  it("filters a list by the stream names allowed for that device and action", () => {
    const names = ["ssh", "rdp", "vnc", "debug-1"];
    expect(names.filter(streamNameFilter(operator, "list", { deviceId: "plant1-a" }))).toEqual([
      "ssh",
      "rdp",
    ]);
    expect(names.filter(streamNameFilter(operator, "list", { deviceId: "plant9" }))).toEqual([]);
    expect(names.filter(streamNameFilter(mixed, "close", { deviceId: "lab-3" }))).toEqual(["ssh"]);
    expect(names.filter(streamNameFilter(mixed, "list", { deviceId: "lab-3" }))).toEqual(names);
    expect(names.filter(streamNameFilter(mixed, "close", { deviceId: "lab-1", moduleId: "m" }))).toEqual([
      "debug-1",
    ]);
  });
});

describe("principal helpers", () => {
  it("names the caller for audit and messages", () => {
    const entra: Principal = { kind: "entra", objectId: "o-1", appId: "a-1", roles: [], grants: [] };
    const appOnly: Principal = { kind: "entra", appId: "a-1", roles: [], grants: [] };
    expect([openedBy(sas()), openedBy(entra), openedBy(appOnly)]).toEqual(["p", "o-1", "a-1"]);
    expect([describePrincipal(sas()), describePrincipal(entra), describePrincipal(appOnly)]).toEqual([
      "SAS policy 'p'",
      "Entra principal 'o-1'",
      "Entra application 'a-1'",
    ]);
  });
});

describe("streamLimit and callerKey", () => {
  const any = { devices: ["*"], streams: ["*"] };
  it("takes the largest limit among the grants, a grant without one counting as the default", () => {
    expect(streamLimit(sas(any), 16)).toBe(16);
    expect(streamLimit(sas({ ...any, maxStreamsPerDevice: 3 }), 16)).toBe(3);
    expect(streamLimit(sas({ ...any, maxStreamsPerDevice: 3 }, any), 16)).toBe(16);
    expect(streamLimit(sas({ ...any, maxStreamsPerDevice: 100 }, any), 16)).toBe(100);
  });

  it("keeps SAS policies and Entra principals apart even when their names coincide", () => {
    const id = "00000000-0000-0000-0000-000000000001";
    const policy: Principal = { kind: "sas", policyName: id, grants: [] };
    const entra: Principal = { kind: "entra", objectId: id, roles: [], grants: [] };
    expect(callerKey(policy)).not.toBe(callerKey(entra));
  });
});

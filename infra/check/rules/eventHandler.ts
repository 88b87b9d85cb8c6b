// The Web PubSub hub must call the control plane where it listens, for the events it
// handles, with a token the control plane can verify. A mismatch here fails silently
// in Azure (events are dropped or, for `connect`, every client is refused), so it is
// checked against the control plane's own route and event list.
import type { Node } from "web-tree-sitter";
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { deployed } from "../resources";
import { arrayItems, propertyAt, propertyValue, stringValue } from "../syntax";

const RULE = "event-handler";

export interface EventHandlerExpectation {
  /** URL path of the relay-events route, e.g. `/api/relay/events`. */
  readonly path: string;
  readonly systemEvents: readonly string[];
}

/**
 * The literal path of `https://${host}/path` (or of a fully literal URL); undefined
 * when the path itself is computed and so cannot be compared.
 */
export function urlTemplatePath(node: Node | undefined): string | undefined {
  if (node?.type !== "string") return undefined;
  const literal = stringValue(node);
  if (literal !== undefined) return URL.canParse(literal) ? new URL(literal).pathname : undefined;
  const parts = node.namedChildren;
  const [scheme, host, ...rest] = parts;
  if (scheme?.text !== "https://" || host?.type !== "interpolation") return undefined;
  if (rest.some((p) => p.type !== "string_content")) return undefined;
  return rest.map((p) => p.text).join("");
}

function handlerProblems(handler: Node, expected: EventHandlerExpectation): string[] {
  const problems: string[] = [];
  const path = urlTemplatePath(propertyValue(handler, "urlTemplate"));
  if (path !== expected.path) {
    problems.push(
      `urlTemplate path ${path ?? "(not literal https://${host}/path)"} must be ${expected.path}`,
    );
  }
  const events = arrayItems(propertyValue(handler, "systemEvents"))?.map(stringValue);
  const wanted = [...expected.systemEvents].sort();
  if (!events || events.some((e) => e === undefined) || [...events].sort().join() !== wanted.join()) {
    problems.push(`systemEvents must be exactly [${wanted.join(", ")}]`);
  }
  if (stringValue(propertyAt(handler, "auth", "type")) !== "ManagedIdentity") {
    problems.push("auth.type must be 'ManagedIdentity'");
  }
  if (!propertyAt(handler, "auth", "managedIdentity", "resource")) {
    problems.push("auth.managedIdentity.resource (the token audience) must be set");
  }
  return problems;
}

export function eventHandlerRule(files: readonly BicepFile[], expected: EventHandlerExpectation): Finding[] {
  const findings: Finding[] = [];
  let hubs = 0;
  for (const file of files) {
    for (const hub of deployed(file.root, "Microsoft.SignalRService/webPubSub/hubs")) {
      hubs++;
      const report = (message: string, node: Node = hub.node): void =>
        void findings.push(finding(file, node, RULE, `${hub.symbol}: ${message}`));
      if (
        stringValue(propertyAt(hub.body, "properties", "anonymousConnectPolicy"))?.toLowerCase() !== "deny"
      ) {
        report("anonymousConnectPolicy must be 'deny'");
      }
      const handlers = arrayItems(propertyAt(hub.body, "properties", "eventHandlers"));
      if (!handlers || handlers.length !== 1) {
        report("needs exactly one event handler (the control plane)");
        continue;
      }
      for (const handler of handlers) {
        for (const problem of handlerProblems(handler, expected)) report(problem, handler);
      }
    }
  }
  const entry = files[0];
  if (hubs === 0 && entry) findings.push(finding(entry, entry.root, RULE, "no Web PubSub hub is deployed"));
  return findings;
}

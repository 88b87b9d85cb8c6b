// Conventions that make the templates usable without reading them: described
// parameters (azd and the portal show the text), UPPER_SNAKE outputs on the entry
// template (azd turns them into environment variables), and a parameters file that
// matches the entry template's parameters.
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { outputs, parameterDefault, parameters } from "../syntax";

export function descriptionRule(files: readonly BicepFile[]): Finding[] {
  return files.flatMap((file) =>
    parameters(file.root)
      .filter((p) => !p.decorators.some((d) => d.name === "description"))
      .map((p) => finding(file, p.node, "description", `param ${p.name} has no @description`)),
  );
}

export function azdOutputsRule(entry: BicepFile): Finding[] {
  return outputs(entry.root)
    .filter((o) => !/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/.test(o.name))
    .map((o) => finding(entry, o.node, "azd-outputs", `output ${o.name} must be UPPER_SNAKE for azd`));
}

/** `parametersJson` is the parsed main.parameters.json. */
export function parametersFileRule(entry: BicepFile, parametersJson: unknown): Finding[] {
  const given = (parametersJson as { parameters?: Record<string, unknown> } | undefined)?.parameters ?? {};
  const declared = parameters(entry.root);
  const names = new Set(declared.map((p) => p.name));
  const findings = Object.keys(given)
    .filter((name) => !names.has(name))
    .map((name) =>
      finding(entry, entry.root, "parameters-file", `main.parameters.json sets unknown param ${name}`),
    );
  for (const p of declared) {
    if (parameterDefault(p.node) === undefined && !(p.name in given)) {
      findings.push(
        finding(
          entry,
          p.node,
          "parameters-file",
          `param ${p.name} has no default and is not in main.parameters.json`,
        ),
      );
    }
  }
  return findings;
}

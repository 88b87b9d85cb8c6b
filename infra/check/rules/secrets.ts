// Keyless means no key is ever read (list* functions) or handed out (outputs land in
// deployment history and in azd's .env), and none is written into a template.
import { finding, type Finding } from "../finding";
import type { BicepFile } from "../parser";
import { call, outputs, walk } from "../syntax";

const RULE = "no-secrets";
const SECRET_NAME = /key|secret|password|passwd|pwd|token|connection_?string|sas|credential/i;
const SECRET_PROPERTY = /(connectionstring|instrumentationkey|key|keys|secret|password|token)$/i;
const KEY_LITERAL = /(AccountKey|SharedAccessKey|AccessKey)=/i;

export function secretsRule(files: readonly BicepFile[]): Finding[] {
  const findings: Finding[] = [];
  for (const file of files) {
    for (const node of walk(file.root)) {
      const called = call(node);
      if (called && /^list/i.test(called.name)) {
        findings.push(finding(file, node, RULE, `${called.name}() reads keys; use Entra roles instead`));
      }
      if (node.type === "string_content" && KEY_LITERAL.test(node.text)) {
        findings.push(finding(file, node, RULE, "a key is written into the template"));
      }
    }
    for (const output of outputs(file.root)) {
      if (SECRET_NAME.test(output.name)) {
        findings.push(finding(file, output.node, RULE, `output ${output.name} looks like a secret`));
      }
      if (output.decorators.some((d) => d.name === "secure")) {
        findings.push(
          finding(file, output.node, RULE, `output ${output.name} is @secure(): outputs carry no secrets`),
        );
      }
      for (const node of output.value ? walk(output.value) : []) {
        if (node.type === "property_identifier" && SECRET_PROPERTY.test(node.text)) {
          findings.push(finding(file, node, RULE, `output ${output.name} exposes ${node.text}`));
        }
      }
    }
  }
  return findings;
}

import { parseBicep } from "../../infra/check/parser";
import { literalValue, stringValue } from "../../infra/check/syntax";

async function valueOf(expression: string) {
  const file = await parseBicep("infra/x.bicep", `var x = ${expression}\n`);
  return file.root.namedChildren[0]?.lastNamedChild ?? undefined;
}

test.each([
  ["'plain'", "plain"],
  ["'it\\'s'", "it's"],
  ["'''\nmulti ${not interpolated}\n'''", "\nmulti ${not interpolated}\n"],
  ["'a${b}'", undefined],
  // The grammar drops `\$` from the tree: unknowable, never silently wrong.
  ["'cost \\${x}'", undefined],
])("stringValue(%s)", async (expression, expected) => {
  expect(stringValue(await valueOf(expression))).toBe(expected);
});

test("literalValue reads nested literals and refuses references", async () => {
  expect(literalValue(await valueOf("[\n  { a: 'x', 'b-c': [1, true, null] }\n]"))).toEqual([
    { a: "x", "b-c": [1, true, null] },
  ]);
  expect(literalValue(await valueOf("[\n  { a: someParam }\n]"))).toBeUndefined();
});

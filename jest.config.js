/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  // swc strips types only; `npm run typecheck` is the type gate, so tests start fast.
  transform: {
    "^.+\\.(t|j)sx?$": ["@swc/jest", { jsc: { target: "es2022" }, module: { type: "commonjs" } }],
  },
  // jose 6 ships ESM only; jest's CJS runtime needs it transformed.
  transformIgnorePatterns: ["/node_modules/(?!jose/)"],
  testTimeout: 30000,
  maxWorkers: 2,
};

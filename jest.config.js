/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  // swc strips types only; `npm run typecheck` is the type gate, so tests start fast.
  transform: {
    "^.+\\.(t|j)sx?$": ["@swc/jest", { jsc: { target: "es2022" }, module: { type: "commonjs" } }],
  },
  // jose 6 and aedes 1 ship ESM only; jest's CJS runtime needs them transformed.
  transformIgnorePatterns: ["/node_modules/(?!(jose|aedes)/)"],
  testTimeout: 30000,
  maxWorkers: 2,
};

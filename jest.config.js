/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  // Transpile only: `npm run typecheck` is the type gate, so tests start fast. ts-jest also turns
  // the ESM-only packages below into CommonJS for jest's runtime.
  transform: {
    "^.+\\.[tj]s$": ["ts-jest", { tsconfig: "tsconfig.jest.json" }],
  },
  // jose 6 and aedes 1 ship ESM only.
  transformIgnorePatterns: ["/node_modules/(?!(jose|aedes)/)"],
  testTimeout: 30000,
  maxWorkers: 2,
};

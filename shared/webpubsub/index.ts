export * from "./codec";

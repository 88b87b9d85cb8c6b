export * from "./codec";
export { corkForTick } from "./cork";

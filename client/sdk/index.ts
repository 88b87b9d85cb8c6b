export * from "./device";
export * from "./relay";
export * from "./service";

/** One readable line per event. Callers pass lines that never contain tokens or keys. */
export type EmulatorLog = (line: string) => void;

export const silentLog: EmulatorLog = () => undefined;

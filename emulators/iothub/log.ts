/** One readable line per event. Callers pass lines that never contain tokens or keys. */
export type EmulatorLog = (line: string) => void;

export const silentLog: EmulatorLog = () => undefined;

/** Client-supplied text (client IDs, topics) made safe for one log line: no control characters, bounded. */
export function printable(text: string | undefined, max = 200): string {
  if (text === undefined) return "?";
  // eslint-disable-next-line no-control-regex -- stripping control characters is the point
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, "?");
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/**
 * The relay's names for a stream: the Web PubSub group both sides join and the user id each side's
 * token carries. The control plane mints tokens with them and the clients join the group, so both
 * import this file. Derived from the stream id, so a relay token names its stream and side.
 */
export type Side = "service" | "device";

export function relayGroup(streamId: string): string {
  return `stream.${streamId}`;
}

export function relayUserId(streamId: string, side: Side): string {
  return `${streamId}.${side}`;
}

/** `npm start` flags that put every service of the local stack on a port the OS picks. */
export const EPHEMERAL_STACK_PORTS: readonly string[] = [
  ...["--port", "0", "--table-port", "0", "--webpubsub-port", "0"],
  ...["--mqtt-port", "0", "--iothub-port", "0"],
];

/**
 * HTTP to a device by ID through DeviceHttpAgent: requests reach the device's web server over
 * tunnel channels, and keep-alive requests share one stream.
 */
import http from "node:http";
import { type AddressInfo, connect } from "node:net";
import { DeviceHttpAgent } from "../../client/sdk/service/http/agent";
import { useTarget } from "./target";

const stack = useTarget();

function get(agent: http.Agent, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "device", path, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (t: string) => (body += t));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

describe("DeviceHttpAgent", () => {
  const servers: http.Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  it("sends keep-alive requests to the device's web server over one stream", async () => {
    const web = http.createServer((req, res) => res.end(`device says ${req.url}`));
    servers.push(web);
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    const port = (web.address() as AddressInfo).port;
    const s = stack();
    const deviceId = s.deviceId("Http-Dev");
    const client = await s.device(deviceId);
    const listener = s.listen(client, { onRequest: () => ({ accept: true }) });
    listener.on("stream", (stream) =>
      stream.on("channel", (channel) => {
        const tcp = connect(port, "127.0.0.1");
        tcp.on("error", () => channel.destroy());
        channel.on("error", () => tcp.destroy());
        channel.pipe(tcp).pipe(channel);
      }),
    );
    const agent = new DeviceHttpAgent(s.client(), { deviceId, streamName: "web" });
    try {
      for (const path of ["/a", "/b", "/c"]) {
        expect(await get(agent, path)).toEqual({ status: 200, body: `device says ${path}` });
      }
      expect(agent.pool.openStreams).toHaveLength(1);
    } finally {
      await agent.close();
    }
  });
});

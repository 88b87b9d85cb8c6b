/**
 * The one place that loads `aedes`. aedes 1.x is ESM-only; with `module: node20` TypeScript
 * compiles this import to require(), which Node >= 20.19 and 22 load natively (jest transforms
 * it; see jest.config.js).
 */
import { Aedes } from "aedes";

export { Aedes };
export type { AuthenticateError, Client as MqttClient, PublishPacket, Subscription } from "aedes";

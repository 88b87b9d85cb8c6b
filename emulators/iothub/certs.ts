import { X509Certificate } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import path from "node:path";
import { generate } from "selfsigned";

export interface TlsMaterial {
  /** The development CA certificate to trust (PEM file). */
  caPath: string;
  caPem: string;
  cert: string;
  key: string;
}

const FILES = {
  caCert: "ca.crt",
  caKey: "ca.key",
  serverCert: "server.crt",
  serverKey: "server.key",
} as const;

const DAY_MS = 24 * 60 * 60 * 1000;

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

function names(extraHost: string | undefined): { dns: string[]; ips: string[] } {
  const dns = ["localhost"];
  const ips = ["127.0.0.1", "::1"];
  if (extraHost && extraHost !== "0.0.0.0" && extraHost !== "::") {
    if (isIP(extraHost)) {
      if (!ips.includes(extraHost)) ips.push(extraHost);
    } else if (!dns.includes(extraHost)) {
      dns.push(extraHost);
    }
  }
  return { dns, ips };
}

function serverCertIsUsable(
  certPem: string,
  caPem: string,
  wanted: { dns: string[]; ips: string[] },
): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    return (
      cert.verify(ca.publicKey) &&
      new Date(cert.validTo).getTime() - Date.now() > DAY_MS &&
      wanted.dns.every((name) => cert.checkHost(name) !== undefined) &&
      wanted.ips.every((ip) => cert.checkIP(ip) !== undefined)
    );
  } catch {
    return false;
  }
}

function caIsUsable(caPem: string): boolean {
  try {
    const ca = new X509Certificate(caPem);
    return ca.ca && new Date(ca.validTo).getTime() - Date.now() > DAY_MS;
  } catch {
    return false;
  }
}

/**
 * Loads the development CA and the server certificate from `stateDir`, creating either on first
 * start (or when the server certificate expires or no longer covers `host`). Keys are written
 * readable by the owner only and never leave the state directory.
 */
export async function ensureTlsMaterial(stateDir: string, host?: string): Promise<TlsMaterial> {
  await mkdir(stateDir, { recursive: true });
  const file = (name: string) => path.join(stateDir, name);
  let caPem = await readIfExists(file(FILES.caCert));
  let caKey = await readIfExists(file(FILES.caKey));
  let renewServer = false;
  if (!caPem || !caKey || !caIsUsable(caPem)) {
    const now = new Date();
    const ca = await generate(
      [{ name: "commonName", value: "device-streams IoT Hub emulator development CA" }],
      {
        keyType: "ec",
        algorithm: "sha256",
        notBeforeDate: new Date(now.getTime() - DAY_MS),
        notAfterDate: new Date(now.getTime() + 10 * 365 * DAY_MS),
        extensions: [
          { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
          { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
        ],
      },
    );
    caPem = ca.cert;
    caKey = ca.private;
    await writeFile(file(FILES.caKey), caKey, { mode: 0o600 });
    await writeFile(file(FILES.caCert), caPem);
    renewServer = true;
  }
  const wanted = names(host);
  let cert = await readIfExists(file(FILES.serverCert));
  let key = await readIfExists(file(FILES.serverKey));
  if (renewServer || !cert || !key || !serverCertIsUsable(cert, caPem, wanted)) {
    const now = new Date();
    const server = await generate([{ name: "commonName", value: "localhost" }], {
      keyType: "ec",
      algorithm: "sha256",
      notBeforeDate: new Date(now.getTime() - DAY_MS),
      notAfterDate: new Date(now.getTime() + 365 * DAY_MS),
      ca: { key: caKey, cert: caPem },
      extensions: [
        { name: "basicConstraints", cA: false },
        { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
        { name: "extKeyUsage", serverAuth: true },
        {
          name: "subjectAltName",
          altNames: [
            ...wanted.dns.map((value) => ({ type: 2 as const, value })),
            ...wanted.ips.map((ip) => ({ type: 7 as const, ip })),
          ],
        },
      ],
    });
    cert = server.cert;
    key = server.private;
    await writeFile(file(FILES.serverKey), key, { mode: 0o600 });
    await writeFile(file(FILES.serverCert), cert);
  }
  return { caPath: file(FILES.caCert), caPem, cert, key };
}

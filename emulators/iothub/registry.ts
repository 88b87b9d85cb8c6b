import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { type Identity, describeIdentity, identityKey } from "./identity";

export interface IdentityRecord {
  deviceId: string;
  moduleId?: string;
  generationId: string;
  etag: string;
  status: "enabled" | "disabled";
  statusReason?: string;
  primaryKey: string;
  secondaryKey: string;
  managedBy?: string;
  statusUpdatedTime: string;
  lastUpdatedTime: string;
}

/** What a caller may set; empty keys mean "let the hub generate them". */
export interface IdentityInput {
  primaryKey?: string;
  secondaryKey?: string;
  status?: "enabled" | "disabled";
  statusReason?: string;
  managedBy?: string;
}

export type RegistryErrorKind = "AlreadyExists" | "NotFound" | "PreconditionFailed" | "Invalid";

export class RegistryError extends Error {
  override readonly name = "RegistryError";
  constructor(
    readonly kind: RegistryErrorKind,
    message: string,
  ) {
    super(message);
  }
}

interface RegistryFile {
  version: 1;
  identities: IdentityRecord[];
}

const newKey = () => randomBytes(32).toString("base64");
const newEtag = () => randomBytes(6).toString("base64");
const newGenerationId = () => `63${randomBytes(8).readBigUInt64BE() % 10n ** 16n}`.padEnd(18, "0");

function checkKey(name: string, key: string | undefined): string | undefined {
  if (key === undefined || key === "") return undefined;
  const bytes = Buffer.from(key, "base64");
  if (bytes.toString("base64") !== key || bytes.length < 16 || bytes.length > 64) {
    throw new RegistryError("Invalid", `${name} must be a base64 key of 16 to 64 bytes.`);
  }
  return key;
}

/** `If-Match` as azure-iothub sends it: `"*"` or a quoted etag; the quotes are optional here. */
function matches(ifMatch: string | undefined, record: IdentityRecord): boolean {
  if (ifMatch === undefined) return true;
  const value = ifMatch.trim().replace(/^"(.*)"$/, "$1");
  return value === "*" || value === record.etag;
}

function isRecord(value: unknown): value is IdentityRecord {
  const r = value as Partial<IdentityRecord> | null;
  return (
    typeof r === "object" &&
    r !== null &&
    typeof r.deviceId === "string" &&
    (r.moduleId === undefined || typeof r.moduleId === "string") &&
    typeof r.primaryKey === "string" &&
    typeof r.secondaryKey === "string" &&
    typeof r.etag === "string" &&
    typeof r.generationId === "string" &&
    (r.status === "enabled" || r.status === "disabled")
  );
}

/**
 * Devices and modules with their keys. Kept in memory and, given a file, written through on every
 * change (whole file, atomically, writes serialized) so a restart finds the same identities.
 */
export class IdentityRegistry {
  private readonly records = new Map<string, IdentityRecord>();
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly file?: string) {}

  async load(): Promise<void> {
    if (!this.file) return;
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    let parsed: Partial<RegistryFile>;
    try {
      parsed = JSON.parse(text) as Partial<RegistryFile>;
    } catch {
      throw new Error(`The registry file ${this.file} is not valid JSON; move it away to start empty.`);
    }
    if (parsed.version !== 1 || !Array.isArray(parsed.identities) || !parsed.identities.every(isRecord)) {
      throw new Error(`The registry file ${this.file} has an unknown format; move it away to start empty.`);
    }
    for (const record of parsed.identities) this.records.set(identityKey(record), record);
  }

  get(identity: Identity): IdentityRecord | undefined {
    return this.records.get(identityKey(identity));
  }

  listDevices(): IdentityRecord[] {
    return [...this.records.values()].filter((r) => r.moduleId === undefined);
  }

  listModules(deviceId: string): IdentityRecord[] {
    return [...this.records.values()].filter((r) => r.moduleId !== undefined && r.deviceId === deviceId);
  }

  async create(identity: Identity, input: IdentityInput = {}): Promise<IdentityRecord> {
    if (this.get(identity)) {
      throw new RegistryError("AlreadyExists", `The ${describeIdentity(identity)} is already registered.`);
    }
    if (identity.moduleId !== undefined && !this.get({ deviceId: identity.deviceId })) {
      throw new RegistryError("NotFound", `The device '${identity.deviceId}' is not registered.`);
    }
    const now = new Date().toISOString();
    const record: IdentityRecord = {
      deviceId: identity.deviceId,
      ...(identity.moduleId === undefined ? {} : { moduleId: identity.moduleId }),
      generationId: newGenerationId(),
      etag: newEtag(),
      status: input.status ?? "enabled",
      ...(input.statusReason === undefined ? {} : { statusReason: input.statusReason }),
      primaryKey: checkKey("primaryKey", input.primaryKey) ?? newKey(),
      secondaryKey: checkKey("secondaryKey", input.secondaryKey) ?? newKey(),
      ...(input.managedBy === undefined ? {} : { managedBy: input.managedBy }),
      statusUpdatedTime: now,
      lastUpdatedTime: now,
    };
    this.records.set(identityKey(identity), record);
    await this.persist();
    return record;
  }

  /** Returns the updated record and whether its credentials or status changed (live sessions must end). */
  async update(
    identity: Identity,
    input: IdentityInput,
    ifMatch: string | undefined,
  ): Promise<{ record: IdentityRecord; revoked: boolean }> {
    const current = this.require(identity, ifMatch);
    const primaryKey = checkKey("primaryKey", input.primaryKey) ?? current.primaryKey;
    const secondaryKey = checkKey("secondaryKey", input.secondaryKey) ?? current.secondaryKey;
    const status = input.status ?? current.status;
    const now = new Date().toISOString();
    const record: IdentityRecord = {
      ...current,
      etag: newEtag(),
      status,
      primaryKey,
      secondaryKey,
      lastUpdatedTime: now,
      ...(status === current.status ? {} : { statusUpdatedTime: now }),
      ...(input.statusReason === undefined ? {} : { statusReason: input.statusReason }),
      ...(input.managedBy === undefined ? {} : { managedBy: input.managedBy }),
    };
    this.records.set(identityKey(identity), record);
    await this.persist();
    const revoked =
      status === "disabled" || primaryKey !== current.primaryKey || secondaryKey !== current.secondaryKey;
    return { record, revoked };
  }

  /** Deletes the identity (a device takes its modules with it); returns every identity removed. */
  async delete(identity: Identity, ifMatch: string | undefined): Promise<IdentityRecord[]> {
    const record = this.require(identity, ifMatch);
    const removed =
      identity.moduleId === undefined ? [record, ...this.listModules(identity.deviceId)] : [record];
    for (const r of removed) this.records.delete(identityKey(r));
    await this.persist();
    return removed;
  }

  /** Resolves once every change so far is on disk. */
  async flush(): Promise<void> {
    await this.writing;
  }

  private require(identity: Identity, ifMatch: string | undefined): IdentityRecord {
    const record = this.get(identity);
    if (!record) throw new RegistryError("NotFound", `The ${describeIdentity(identity)} is not registered.`);
    if (!matches(ifMatch, record)) {
      throw new RegistryError(
        "PreconditionFailed",
        `The etag does not match the ${describeIdentity(identity)}.`,
      );
    }
    return record;
  }

  private async persist(): Promise<void> {
    const file = this.file;
    if (!file) return;
    const snapshot: RegistryFile = { version: 1, identities: [...this.records.values()] };
    const write = async () => {
      await mkdir(path.dirname(file), { recursive: true });
      const temp = `${file}.${process.pid}.tmp`;
      // The file holds device keys: readable by its owner only.
      await writeFile(temp, JSON.stringify(snapshot, null, 2) + "\n", { mode: 0o600 });
      await rename(temp, file);
    };
    const next = this.writing.then(write, write);
    this.writing = next.catch(() => undefined);
    await next;
  }
}

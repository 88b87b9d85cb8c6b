/**
 * The longest-lived control-plane SAS token the service accepts by default (and `devicestream sas`
 * mints): one year. A SAS cannot be revoked except by rotating its policy's key, so its lifetime
 * is bounded; a year still covers a yearly rotation of keys handed to scripts and gateways.
 * The control plane's `SERVICE_SAS_MAX_LIFETIME_SECONDS` changes it.
 */
export const MAX_SAS_TTL_SECONDS = 365 * 24 * 3600;

/**
 * What Table Storage holds, from "Understanding the Table service data model"
 * (https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model):
 * a String property is UTF-16 encoded and at most 64 KiB, i.e. 32,768 UTF-16 code units (what
 * JavaScript's `string.length` counts; Azurite checks exactly that and answers 400
 * PropertyValueTooLarge), and all of an entity's properties together at most 1 MiB.
 *
 * A stream record holds three strings that come from outside: the request data (bounded by
 * STREAMS_MAX_DATA_BYTES, at most this), the device's answer data (at most this) and a close
 * reason (a device's is at most MAX_REASON_UNITS). At 2 bytes a unit that is under 140 KiB per
 * record, far below the entity limit.
 */
export const STRING_PROPERTY_MAX_UNITS = 32 * 1024;

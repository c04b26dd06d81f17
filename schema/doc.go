// Package schema gives events a schema: an Avro codec whose schemas come from an event catalog
// (a directory of .avsc files, one per event type and version), a client for a Confluent-style
// schema registry, compatibility checks between versions, and Open, which opens a bus that
// reads and writes what Open edX's event bus libraries do when the config's schemas: section
// says mode: openedx.
//
// Modes (schemas.mode):
//   - "" or "json": no schema layer; the bus's JSON codec, as without this package.
//   - "avro": Event.Data is Avro binary encoded with the catalog's latest schema for the event's
//     type (ce_type), on every backend, without registry framing.
//   - "openedx": as "avro", and on Kafka the value carries the schema registry's framing (magic
//     byte 0, 4-byte big-endian schema id, Avro binary) under the TopicRecordName subject
//     "<topic>-<event type>.CloudEvent", the record key is the ordering key as an Avro string
//     framed the same way (subject "<topic>-string"), and the headers Open edX's consumers read
//     (ce_datacontenttype, ce_minorversion, sourcehost, and ce_time as Python's isoformat) are
//     written. On Redis, event_data is Avro binary without framing, which is what
//     edx-event-bus-redis writes, and the minorversion and sourcehost fields are filled in;
//     the Redis backend's other fields are already Open edX's.
//
// An event type is known by its catalog entry: publishing one the catalog lacks fails, and on
// Kafka in openedx mode a consumed record of such a type counts as unreadable.
//
// Publishing an event whose data does not match its schema fails with an error naming the
// field and wrapping bus.ErrInvalidEvent; consuming one that does not decode yields an
// ErrInvalidEvent error from Event.DecodeData (or, on Kafka in openedx mode, a message marked
// with bus.HeaderInvalidReason), so the poison middleware sends it to the poison topic.
package schema

// Package redis is the eventbus backend for Redis Streams: each topic is a stream key, each
// consumer group a stream consumer group, and each event one stream entry whose fields a person
// can read with redis-cli XRANGE. Import it for its side effect and set `backend: redis`:
//
//	import _ "github.com/eventbus-go/eventbus/backends/redis"
//
// Publishing is one XADD per event that also trims the stream: by age to publisher.retention
// (MINID ~, 7 days by default, like Kafka's retention.ms) and by count to publisher.max_len
// (MAXLEN ~, off by default), per topic in publisher.topics. Redis holds streams in memory, so
// an untrimmed stream would grow with traffic until Redis refuses writes or evicts; retention
// 0 keeps entries forever and must be asked for. Subscribing uses this package's own
// Subscriber, written because watermill-redisstream's loses data in ways a production user
// would not expect (see below).
//
// # Wire format
//
// One stream field per attribute, in the layout Open edX's Redis event bus
// (edx-event-bus-redis) writes and reads, so either side consumes the other's events:
//
//	id            event id (ce_id), also the Watermill message UUID
//	type          ce_type
//	source        ce_source
//	time          ce_time, written as Python's isoformat() does: 2026-11-23T12:00:00.123456+00:00
//	minorversion  metadata "minorversion" (Open edX)
//	sourcehost    metadata "sourcehost" (Open edX)
//	sourcelib     metadata "sourcelib" (Open edX)
//	event_data    the payload bytes, untouched
//
// The other envelope attributes use their CloudEvents names: specversion (ce_specversion),
// datacontenttype (content-type), subject (ce_subject), partitionkey (the ordering key).
// _watermill_message_uuid is written only when a message's UUID differs from its event id.
// Every other metadata key is a field of its own name; a key that is one of the reserved
// fields above is refused by Publish with an error naming it (see ReservedFields).
//
// # Entries that are not events (the poison path)
//
// An entry without an id or an event_data field (written by hand with XADD, say) is never
// dropped and never retried silently: the subscriber logs an error naming the stream and entry
// id, and delivers it as a message whose UUID is "redis:<stream>/<entry id>" and whose metadata
// bus.HeaderInvalidReason ("eventbus_invalid_reason") says what is wrong. A handler, or the
// poison-queue middleware, routes it; acking it removes it from the group's pending list.
//
// # Delivery semantics
//
// At least once. An entry is acked (XACK) only after its handler acked the message; acks are
// sent in batches, and Close waits up to DrainTimeout for messages already handed out and
// flushes their acks before returning. An entry read but not acked stays pending on its
// consumer: a restarted instance with the same consumer name reads its own pending entries
// first, and any other consumer of the group claims them (XAUTOCLAIM) once they have been idle
// for MinIdle. The subscriber renews the entries it holds, so only a crashed consumer's entries
// reach MinIdle by waiting; a subscription that ends cleanly (Close, or its context cancelled)
// drains and then sets the idle time of the entries it read and did not ack to MinIdle, so that
// another consumer claims them within ClaimInterval instead of after MinIdle. Consumers idle for ConsumerTimeout are removed from the group only when they
// have nothing pending, checked and deleted in one atomic script.
//
// Entries are read ReadBatch at a time and handed out MaxInFlight at a time. With MaxInFlight 1
// and a single consumer per group, handlers see entries in stream order (a nacked message is
// handed out again before the next one); otherwise there is no ordering guarantee.
//
// # What Redis may lose, and how it is reported
//
// Redis keeps streams only as far as its persistence settings say; Open reads appendonly and
// save and logs a warning when the server keeps nothing on disk, and Capabilities().Persistence
// says what it found. When a consumer group vanishes (a restart without persistence, FLUSHALL,
// the key deleted or evicted), the subscriber recreates it at the start of the stream, so
// everything published after the loss is consumed, and reports the backlog the group had not
// read (its last observed lag) as a DataLoss: an error log, the Stats counters and the
// Config.OnDataLoss hook. Pending entries trimmed away (publisher.retention or max_len) before
// they were acked are reported the same way, with their ids. Nothing the broker still holds is ever skipped.
//
// Recreating the group at the stream's start also means that a group deleted by hand
// (XGROUP DESTROY) while its stream remains is read again from the oldest retained entry:
// duplicates rather than loss.
//
// # Errors
//
// Errors wrap the portable classes of package bus, with go-redis's own error left in the chain
// for errors.As. The classes are read with go-redis's typed checks (the server's error prefix),
// never from our reading of the message:
//
//   - bus.ErrUnauthorized: NOAUTH and WRONGPASS (redis.IsAuthError: a wrong or missing
//     password), NOPERM (redis.IsPermissionError: an ACL user without the command or key).
//   - bus.ErrUnavailable: a net.Error (connection refused, reset, dial or read timeout), EOF,
//     redis.ErrPoolTimeout, and the server's LOADING, MASTERDOWN, CLUSTERDOWN, TRYAGAIN and
//     "max number of clients reached". Open fails with it when no server answers within
//     write_timeout + read_timeout, naming the addresses.
//   - bus.ErrClosed: Publish after the publisher's Close, Subscribe after the subscriber's
//     (ErrSubscriberClosed), and redis.ErrClosed.
//
// # Observing it
//
// Bus.As gives the go-redis client (*redis.UniversalClient) and the *Subscriber, whose Stats
// count reads, claims, acks, nacks, invalid entries, recreated groups and lost entries, and
// whose Lags report each subscription's consumer group lag: the metrics to export. Rewind and
// RewindTo move an existing group to a stream id or a time, for replay.
package redis

package driver

// Message metadata keys of the event envelope, which drivers map onto their broker's headers
// or fields. They are the CloudEvents 1.0 binary-mode header names that Open edX's event bus
// writes on Kafka, so its producers and consumers interoperate with ours. package bus
// re-exports them.
const (
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderTime        = "ce_time"
	HeaderSpecVersion = "ce_specversion"
	HeaderSubject     = "ce_subject"
	HeaderContentType = "content-type"
	// HeaderKey carries the ordering key (the CloudEvents partitioning extension's
	// "partitionkey"). On Kafka it travels as the record key instead of a header.
	HeaderKey = "ce_partitionkey"
)

// HeaderInvalidReason marks a consumed message that a driver could not turn into a proper
// event (a Redis entry without an id, a Kafka record with a malformed header). The driver
// delivers it anyway, never dropping it, with this header saying what is wrong; the poison
// middleware sends such a message straight to the poison topic with the reason.
const HeaderInvalidReason = "eventbus_invalid_reason"

// HeaderPoisonLastFailure is set by the poison middleware on a message it stores in the poison
// queue: when the last attempt to handle it failed (RFC 3339 with nanoseconds, UTC). A poison
// queue reader whose broker has no stable name for a record names it by its id and this time.
const HeaderPoisonLastFailure = "eventbus_poison_last_failure"

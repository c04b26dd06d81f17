// Package middleware holds eventbus's router middleware, one file each: retries with backoff
// (retry.go), a poison queue with provenance and redrive (poison.go), per-key ordering with
// parallelism (ordering.go), deduplication (dedup.go; the Redis store is in redisstore),
// panic recovery, handler timeouts and correlation ids. Package router assembles them from the
// config file's router: section, in the order its documentation explains; use them directly
// only to build a chain of your own.
//
// # Delivery
//
// At-least-once holds throughout: a message is acked only after its handler succeeded or it
// was stored in the poison queue; a pipelining subscriber commits a position only when every
// message before it is done. A handler may therefore see an event again after a crash or a
// rebalance; Dedup makes that rare, not impossible.
//
// The poison queue of topic T is the topic router.poison.topic names (default T.poison).
// `eventbus dlq list|show|redrive|purge --topic T` reads it; redrive sends a message back to T
// with its key and event id and a HeaderRedriveCount. A redrive reaches every consumer group of
// T again, and their Dedup skips it where it was handled.
package middleware

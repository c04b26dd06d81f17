// Package router runs an eventbus service's handlers: Watermill's router built from the config
// file's router: section, with the middleware chain (retries, poison queue, deduplication,
// per-key ordering, panic recovery, timeouts, correlation ids) the same on every backend.
//
//	cfg, _ := config.LoadOrDefault("eventbus.yaml")
//	b, _ := bus.Open(ctx, cfg)
//	r, _ := router.FromConfig(b, cfg) // the router: section, line-numbered errors
//	r.AddConsumerHandler("enrollments", "enrollments", b.Subscriber, handle)
//	err := r.Run(ctx)
//
// # The chain, outermost first, and why in this order
//
//  1. CorrelationID: outermost, so every message, also one that ends in the poison queue, carries
//     a correlation id (its event id when it came without one), and messages the handler
//     produces inherit it.
//  2. Poison: it must see only the final outcome of all attempts, so it sits outside Retry.
//     Inside it, every retry's failure would be published (Watermill #580 is users tripping on
//     exactly this order). It acks a failed message only after the poison topic accepted it,
//     and nacks it when that publish fails, so no message is lost.
//  3. Dedup: inside Poison and outside Retry: a duplicate is skipped before any attempt, and an
//     event id is recorded only after the handler succeeded, so a poisoned event is not
//     recorded and its redrive is handled. It claims the event around the rest of the chain,
//     so a copy that arrives while another is handled waits for it (router.dedup.claim_ttl).
//  4. Retry: calls the rest of the chain again with backoff; stops at once for a Permanent
//     error or an invalid event (bus.ErrInvalidEvent), and when the message's context ends
//     (shutdown, lost partition), in which case Poison leaves the message for redelivery.
//  5. Recoverer: inside Retry, so that a panic becomes a *PanicError that is retried and then
//     poisoned like any error, instead of a nack that brings the message back forever.
//  6. Timeout: innermost, so each attempt gets its own deadline and the backoff between
//     attempts does not eat into it.
//
// Ordering is not in this chain: it is a subscriber decorator below the router (see
// Ordering), because Watermill's router starts a goroutine per message it receives. It hands
// the router a key's next message only after the previous one was acked, that is after the
// whole chain above finished with it: a message being retried holds back its own key, and no
// other. It needs a subscriber that hands out messages before earlier ones are acked
// (bus.Pipelining; on Kafka, kafka.consumer.max_in_flight), and New installs it on such
// a backend. On a backend that does not pipeline, the subscriber already hands out one message
// at a time (per Kafka partition), which keeps per-key order without it.
//
// # Delivery
//
// At-least-once holds throughout: a message is acked only after its handler succeeded or it
// was stored in the poison queue; a pipelining subscriber commits a position only when every
// message before it is done. A handler may therefore see an event again after a crash or a
// rebalance; Dedup makes that rare, not impossible.
//
// # Running a consumer service
//
// Run (runner.go) is the whole main of a consumer service: the bus and router from the config
// file, the service's Handlers, /healthz, /readyz and /metrics on router.http.addr
// (health.go), Prometheus metrics and OpenTelemetry spans with W3C trace context in message
// metadata (telemetry.go), slog by router.log, the error limit
// (router.max_consecutive_errors), the kill switch (router.enabled) and the drain on SIGTERM.
// The runner adds three observation points to the chain above: outermost (handling span,
// in-flight gauge, duration), between dedup and retry (outcome after retries: handled or
// failed, and the error limit), and inside retry (retries).
package router

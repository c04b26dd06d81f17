package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/driver"
	"github.com/eventbus-go/eventbus/config"
)

// Metadata keys of the provenance the poison middleware adds to a message it stores in the
// poison queue. The message keeps its payload, key and every header it had; these say why it
// is there and where it came from. Times are RFC 3339 with nanoseconds, in UTC.
const (
	HeaderPoisonReason       = "eventbus_poison_reason"        // a Reason
	HeaderPoisonError        = "eventbus_poison_error"         // the last error's text (cut at 8 KiB)
	HeaderPoisonHandler      = "eventbus_poison_handler"       // the router handler's name
	HeaderPoisonTopic        = "eventbus_poison_topic"         // the topic it was consumed from
	HeaderPoisonGroup        = "eventbus_poison_group"         // the consumer group it was consumed in
	HeaderPoisonPosition     = "eventbus_poison_position"      // bus.Position.String(), for people
	HeaderPoisonBackend      = "eventbus_poison_backend"       // the backend's name, e.g. "kafka"
	HeaderPoisonCoordinates  = "eventbus_poison_coordinates"   // bus.Position.Coordinates, as its driver wrote them
	HeaderPoisonAttempts     = "eventbus_poison_attempts"      // handler calls on the last delivery
	HeaderPoisonFirstFailure = "eventbus_poison_first_failure" // when the first attempt failed
	HeaderPoisonLastFailure  = driver.HeaderPoisonLastFailure  // when the last attempt failed
	HeaderPoisonHost         = "eventbus_poison_host"          // the consumer's host name
	// HeaderParkedBehind is set on a message parked (reason "parked") behind an earlier message
	// of its key: the id of that poisoned message.
	HeaderParkedBehind = "eventbus_parked_behind"
	// HeaderRedriveCount counts how often `eventbus dlq redrive` has sent the message back to its
	// topic.
	HeaderRedriveCount = "eventbus_redrive_count"
)

// Reason says why a message is in the poison queue.
type Reason string

const (
	// ReasonInvalid: the message cannot be read as an event: the backend flagged it
	// (bus.HeaderInvalidReason) or the handler's decoding failed (bus.ErrInvalidEvent).
	// Never retried.
	ReasonInvalid Reason = "invalid"
	// ReasonPermanent: the handler returned an error marked with Permanent. Never retried.
	ReasonPermanent Reason = "permanent"
	// ReasonExhausted: the handler kept failing until the retry limits were reached.
	ReasonExhausted Reason = "exhausted"
	// ReasonParked: an earlier message of the same key was poisoned under the park policy, and
	// this one waits behind it (HeaderParkedBehind) without being handled.
	ReasonParked Reason = "parked"
)

// Reasons lists every Reason.
var Reasons = []Reason{ReasonInvalid, ReasonPermanent, ReasonExhausted, ReasonParked}

// PoisonConfig is router.poison.
type PoisonConfig struct {
	// Enabled stores a message that failed for good in the poison queue and acks it; when false
	// such a message is nacked and redelivered until it succeeds. Default: true.
	Enabled bool `yaml:"enabled"`
	// Topic names the poison topic; "{topic}" stands for the topic the message was consumed
	// from. Default: "{topic}.poison".
	Topic string `yaml:"topic"`
	// OnPoisoned is what happens to a key's later messages when one of its messages goes to
	// the poison queue: "skip" handles them as usual; "park" sends them to the poison queue too,
	// unhandled and marked as parked behind the poisoned message's id, until the poisoned
	// message, redriven, succeeds (see NewPoison). Park keeps a key's order across a failure,
	// at the price of holding back its later events until an operator redrives. Default: skip.
	OnPoisoned OnPoisoned `yaml:"on_poisoned"`
}

// DefaultPoisonConfig returns the defaults of router.poison.
func DefaultPoisonConfig() PoisonConfig {
	return PoisonConfig{Enabled: true, Topic: "{topic}.poison", OnPoisoned: Skip}
}

// Validate reports every problem, with paths relative to router.poison.
func (c *PoisonConfig) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Topic) == "" {
		errs = append(errs, config.Invalid("topic", `must name the poison topic, e.g. "{topic}.poison"`))
	}
	if c.OnPoisoned != Skip && c.OnPoisoned != Park {
		errs = append(errs, config.Invalid("on_poisoned", "%q: want skip or park", c.OnPoisoned))
	}
	return errors.Join(errs...)
}

// PoisonTopic returns the poison topic of topic.
func (c PoisonConfig) PoisonTopic(topic string) string {
	return strings.ReplaceAll(c.Topic, "{topic}", topic)
}

// OnPoisoned is the policy for a key's later messages once one of its messages is poisoned.
type OnPoisoned string

const (
	// Skip handles the key's later messages as usual.
	Skip OnPoisoned = "skip"
	// Park sends the key's later messages to the poison queue too, unhandled, with reason
	// "parked" and HeaderParkedBehind, until the poisoned message, redriven, succeeds.
	Park OnPoisoned = "park"
)

// maxErrorBytes bounds the error text kept in a poison message: a panic's stack can be long,
// and a record must stay under the broker's size limit.
const maxErrorBytes = 8 << 10

// NewPoison returns the poison middleware. It sends to the poison topic, via pub, a message
// whose handling failed for good (retries exhausted, a permanent error, an invalid event, or
// a message the backend flagged with bus.HeaderInvalidReason), with its payload, key and
// headers intact plus the provenance headers above, and only then returns success so that the
// router acks it. When that publish fails it returns the error (wrapping ErrPoisonPublish) and
// the router nacks the message, which is redelivered: a message is never dropped.
//
// When the message's context has ended (the consumer is shutting down or lost the partition)
// the handler's error is returned as is: the message is redelivered rather than poisoned.
//
// Under the Park policy it remembers, per handler, topic and ordering key, the messages it
// poisoned that are still poisoned, and parks the key's later messages behind the earliest of
// them (see Park). A redriven poisoned message is handled again; if it fails again, the key's
// redriven later messages are parked again behind it. That state is kept in a ParkStore: by
// default the process's memory, which a restart or a rebalance loses (the key's later messages
// are then handled again); a shared store (NewPoisonWithParkStore) keeps it across both.
func NewPoison(pub message.Publisher, cfg PoisonConfig, logger *slog.Logger) (message.HandlerMiddleware, error) {
	return NewPoisonWithParkStore(pub, cfg, nil, logger)
}

// NewPoisonWithParkStore is NewPoison with the park policy's state kept in store (nil: this
// process's memory). A store shared by the consumer group's instances (redisstore.Park) keeps
// keys parked across restarts and rebalances.
func NewPoisonWithParkStore(pub message.Publisher, cfg PoisonConfig, store ParkStore, logger *slog.Logger) (message.HandlerMiddleware, error) {
	if pub == nil {
		return nil, errors.New("poison: publisher is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("poison: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	p := &poison{pub: pub, cfg: cfg, park: cfg.OnPoisoned == Park, parked: store, host: host, logger: logger}
	if p.parked == nil {
		p.parked = NewMemoryParkStore()
	}
	return p.middleware, nil
}

type poison struct {
	pub    message.Publisher
	cfg    PoisonConfig
	park   bool
	parked ParkStore
	host   string
	logger *slog.Logger
}

func (p *poison) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		rec := &failures{}
		pk := ParkKey{Handler: message.HandlerNameFromCtx(ctx), Topic: topicOf(msg), Key: msg.Metadata.Get(bus.HeaderKey)}

		if why := msg.Metadata.Get(bus.HeaderInvalidReason); why != "" {
			return nil, p.store(ctx, msg, ReasonInvalid, errors.New(why), nil, "")
		}
		parking := p.park && pk.Key != ""
		if parking {
			behind, park, err := p.parked.Admit(ctx, pk, msg.UUID, msg.Metadata.Get(HeaderRedriveCount) != "")
			if err != nil {
				// Without the key's park state its order cannot be kept: redeliver rather than guess.
				return nil, fmt.Errorf("message %s of %s: park state of key %q: %w", msg.UUID, pk.Topic, pk.Key, err)
			}
			if park {
				return nil, p.store(ctx, msg, ReasonParked, fmt.Errorf("parked behind poisoned message %s of key %q", behind, pk.Key), nil, behind)
			}
		}

		msg.SetContext(withFailures(ctx, rec))
		out, err := h(msg)
		msg.SetContext(ctx)
		if err == nil {
			if parking {
				if err := p.parked.Handled(ctx, pk, msg.UUID); err != nil {
					// Handled: acking is right. The key may stay parked until its next redrive.
					p.logger.Error("cannot record a handled message in the park state; the key may stay parked",
						"message_id", msg.UUID, "topic", pk.Topic, "key", pk.Key, "err", err)
				}
			}
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		reason := ReasonExhausted
		switch {
		case errors.Is(err, bus.ErrInvalidEvent):
			reason = ReasonInvalid
		case IsPermanent(err):
			reason = ReasonPermanent
		}
		if perr := p.store(ctx, msg, reason, err, rec, ""); perr != nil {
			return nil, errors.Join(err, perr)
		}
		if parking {
			if err := p.parked.Poisoned(ctx, pk, msg.UUID); err != nil {
				// Stored but not recorded: a later message of the key would overtake it. Nack:
				// the redelivery is poisoned (again) and recorded.
				return nil, fmt.Errorf("message %s of %s stored in the poison queue, but its key %q could not be parked: %w", msg.UUID, pk.Topic, pk.Key, err)
			}
		}
		return nil, nil
	}
}

// store publishes msg with its provenance to the poison topic. rec is nil for a message that
// was never handed to the handler (invalid, parked): it records 0 attempts.
func (p *poison) store(ctx context.Context, msg *message.Message, reason Reason, cause error, rec *failures, parkedBehind string) error {
	topic := topicOf(msg)
	if topic == "" {
		return fmt.Errorf("message %s: %w: the topic it was consumed from is unknown (no router handler context, no position)", msg.UUID, ErrPoisonPublish)
	}
	now := time.Now()
	attempts, first, last := 0, now, now
	if rec != nil {
		attempts, first, last = rec.snapshot(now)
	}
	pm := msg.Copy()
	pm.SetContext(ctx)
	md := pm.Metadata
	delete(md, HeaderAttempt)
	for _, k := range provenanceHeaders {
		delete(md, k)
	}
	text := cause.Error()
	if len(text) > maxErrorBytes {
		text = text[:maxErrorBytes] + "... (cut)"
	}
	md.Set(HeaderPoisonReason, string(reason))
	md.Set(HeaderPoisonError, text)
	md.Set(HeaderPoisonHandler, message.HandlerNameFromCtx(ctx))
	md.Set(HeaderPoisonTopic, topic)
	md.Set(HeaderPoisonAttempts, strconv.Itoa(attempts))
	md.Set(HeaderPoisonFirstFailure, first.UTC().Format(time.RFC3339Nano))
	md.Set(HeaderPoisonLastFailure, last.UTC().Format(time.RFC3339Nano))
	md.Set(HeaderPoisonHost, p.host)
	if parkedBehind != "" {
		md.Set(HeaderParkedBehind, parkedBehind)
	}
	if pos, ok := bus.PositionOf(msg); ok {
		setPosition(md, pos)
	}
	poisonTopic := p.cfg.PoisonTopic(topic)
	if err := p.pub.Publish(poisonTopic, pm); err != nil {
		p.logger.Error("cannot store a failed message in the poison queue; it will be redelivered",
			"message_id", msg.UUID, "topic", topic, "poison_topic", poisonTopic, "reason", reason, "err", err)
		return fmt.Errorf("message %s of %s: %w %s: %w", msg.UUID, topic, ErrPoisonPublish, poisonTopic, err)
	}
	p.logger.Warn("message stored in the poison queue", "message_id", msg.UUID, "topic", topic,
		"poison_topic", poisonTopic, "reason", reason, "attempts", attempts, "err", text)
	return nil
}

// topicOf is the topic msg was consumed from: the router handler's, else its position's.
func topicOf(msg *message.Message) string {
	if t := message.SubscribeTopicFromCtx(msg.Context()); t != "" {
		return t
	}
	pos, _ := bus.PositionOf(msg)
	return pos.Topic
}

func setPosition(md message.Metadata, pos bus.Position) {
	md.Set(HeaderPoisonPosition, pos.String())
	md.Set(HeaderPoisonBackend, pos.Backend)
	if pos.ConsumerGroup != "" {
		md.Set(HeaderPoisonGroup, pos.ConsumerGroup)
	}
	if pos.Coordinates != "" {
		md.Set(HeaderPoisonCoordinates, pos.Coordinates)
	}
}

// provenanceHeaders are the headers the poison middleware writes; a message poisoned again
// after a redrive gets them afresh, and a redriven message leaves without them.
var provenanceHeaders = []string{
	HeaderPoisonReason, HeaderPoisonError, HeaderPoisonHandler, HeaderPoisonTopic, HeaderPoisonGroup,
	HeaderPoisonPosition, HeaderPoisonBackend, HeaderPoisonCoordinates, HeaderPoisonAttempts,
	HeaderPoisonFirstFailure, HeaderPoisonLastFailure, HeaderPoisonHost, HeaderParkedBehind,
}

// Redriven returns the copy of a poison-queue message to publish back to its topic (p.Topic,
// from ParseProvenance): payload, key and the event's own headers as they were, without the
// provenance headers and the retry attempt, and with HeaderRedriveCount one above p's.
func Redriven(msg *message.Message, p Provenance) *message.Message {
	rm := msg.Copy()
	for k := range rm.Metadata {
		if strings.HasPrefix(k, "eventbus_poison_") || k == HeaderParkedBehind || k == HeaderAttempt {
			delete(rm.Metadata, k)
		}
	}
	rm.Metadata.Set(HeaderRedriveCount, strconv.Itoa(p.RedriveCount+1))
	return rm
}

// Provenance is the poison queue's record of why and where a message failed, read back from
// its headers by ParseProvenance.
type Provenance struct {
	Reason       Reason
	Error        string
	Handler      string
	Topic        string
	Group        string
	Position     bus.Position
	Attempts     int
	FirstFailure time.Time
	LastFailure  time.Time
	Host         string
	ParkedBehind string
	RedriveCount int
}

// ParseProvenance reads the provenance headers of a message consumed from a poison topic. It
// fails, naming the message and header, when a header the poison middleware always writes is
// missing or malformed: the message did not come from it.
func ParseProvenance(msg *message.Message) (Provenance, error) {
	md := msg.Metadata
	p := Provenance{
		Reason:       Reason(md.Get(HeaderPoisonReason)),
		Error:        md.Get(HeaderPoisonError),
		Handler:      md.Get(HeaderPoisonHandler),
		Topic:        md.Get(HeaderPoisonTopic),
		Group:        md.Get(HeaderPoisonGroup),
		Host:         md.Get(HeaderPoisonHost),
		ParkedBehind: md.Get(HeaderParkedBehind),
	}
	var problems []string
	if p.Reason == "" {
		problems = append(problems, "no "+HeaderPoisonReason)
	}
	if p.Topic == "" {
		problems = append(problems, "no "+HeaderPoisonTopic)
	}
	num := func(key string, bits int) int64 {
		v := md.Get(key)
		if v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil || n < 0 {
			problems = append(problems, fmt.Sprintf("%s %q is not a count (a whole number, 0 or more)", key, v))
			return 0
		}
		return n
	}
	when := func(key string) time.Time {
		v := md.Get(key)
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s %q is not an RFC 3339 time", key, v))
		}
		return t
	}
	p.Attempts = int(num(HeaderPoisonAttempts, 32))
	p.RedriveCount = int(num(HeaderRedriveCount, 32))
	p.FirstFailure = when(HeaderPoisonFirstFailure)
	p.LastFailure = when(HeaderPoisonLastFailure)
	p.Position = bus.Position{
		Backend:       md.Get(HeaderPoisonBackend),
		Topic:         p.Topic,
		ConsumerGroup: p.Group,
		Coordinates:   md.Get(HeaderPoisonCoordinates),
	}
	if len(problems) > 0 {
		return p, fmt.Errorf("message %s is not a poison-queue message: %s", msg.UUID, strings.Join(problems, ", "))
	}
	return p, nil
}

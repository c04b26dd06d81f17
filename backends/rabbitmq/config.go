package rabbitmq

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/config"
)

// Config is the rabbitmq: section of the config file. Every field's comment gives its default;
// the defaults are the safe choice (durable quorum queues, persistent messages, publisher
// confirms, a pool of confirming channels), not the fastest one.
type Config struct {
	// URL is amqp://user:password@host:port/vhost or amqps://... (the default vhost "/" is
	// written %2f). When set it replaces Host, Port, VHost, Username and Password. It may hold a
	// password, so it is a secret: give it as ${VAR} and it is redacted by `config print`.
	// Default: "" (use the fields below).
	URL config.Secret `yaml:"url"`
	// Host of the broker. Default: "127.0.0.1".
	Host string `yaml:"host"`
	// Port of the broker's AMQP listener. Default: 5672 (the TLS listener is usually 5671).
	Port int `yaml:"port"`
	// VHost is the virtual host. Default: "/".
	VHost string `yaml:"vhost"`
	// Username for PLAIN authentication. Default: "guest" (which RabbitMQ accepts only from
	// localhost).
	Username string `yaml:"username"`
	// Password for PLAIN authentication; give it as ${VAR} or ${file:PATH}. Default: "guest".
	Password config.Secret `yaml:"password"`
	// ConnectionName is shown for this client's connections in rabbitmqctl list_connections and
	// the management UI. Default: "eventbus".
	ConnectionName string `yaml:"connection_name"`
	// Heartbeat is the AMQP heartbeat interval the client asks for; a dead peer is noticed after
	// about two of them. Default: 10s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// DialTimeout bounds the TCP connect plus the TLS and AMQP handshakes. Default: 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// TLS configures amqps. An amqps:// URL turns it on as well. Default: off.
	TLS config.TLS `yaml:"tls"`
	// Reconnect is the backoff between attempts to reconnect after the connection is lost.
	Reconnect ReconnectConfig `yaml:"reconnect"`

	// ConsumerGroup names the group subscribers join: each topic gets one queue per group, so
	// every group gets every message and instances of one group share the work. "" gives every
	// subscription a private, exclusive, auto-deleted queue that exists only while it is
	// connected (messages published meanwhile are lost: for tooling, not services).
	// Default: "eventbus".
	ConsumerGroup string `yaml:"consumer_group"`

	Exchange  ExchangeConfig  `yaml:"exchange"`
	Queue     QueueConfig     `yaml:"queue"`
	Stream    StreamConfig    `yaml:"stream"`
	Publisher PublisherConfig `yaml:"publisher"`
	Consumer  ConsumerConfig  `yaml:"consumer"`
}

// ReconnectConfig is rabbitmq.reconnect: exponential backoff with jitter.
type ReconnectConfig struct {
	// InitialInterval is the wait before the first reconnect attempt. Default: 100ms.
	InitialInterval time.Duration `yaml:"initial_interval"`
	// MaxInterval caps the wait between attempts. Default: 5s.
	MaxInterval time.Duration `yaml:"max_interval"`
}

// ExchangeConfig is rabbitmq.exchange: where Publish sends messages. The routing key is always
// the topic.
type ExchangeConfig struct {
	// Name of the exchange. "{topic}" in it is replaced by the topic, giving one exchange per
	// topic. Default: "eventbus", one exchange for every topic, routing by topic.
	Name string `yaml:"name"`
	// Type is "topic", "direct" or "fanout" (fanout needs "{topic}" in Name). Default: "topic".
	Type string `yaml:"type"`
	// Durable exchanges survive a broker restart. Default: true.
	Durable bool `yaml:"durable"`
}

// QueueConfig is rabbitmq.queue: the queue of each (topic, consumer group).
type QueueConfig struct {
	// Type is "quorum" (replicated, the durable choice RabbitMQ recommends), "classic", or
	// "stream" (an append-only log per topic that consumers read from an offset: the only type
	// that can replay; see StreamConfig). Default: "quorum".
	Type string `yaml:"type"`
	// Name of a group's queue; must hold "{topic}" and "{group}". Default: "{group}.{topic}".
	Name string `yaml:"name"`
	// Durable queues survive a broker restart; quorum and stream queues always are.
	// Default: true.
	Durable bool `yaml:"durable"`
	// SingleActiveConsumer sets x-single-active-consumer: of the group's instances only one
	// consumes at a time and the others stand by, so messages are handled in publish order
	// across instances (per-key ordering), at the price of parallelism. Default: false.
	SingleActiveConsumer bool `yaml:"single_active_consumer"`
	// TemporaryGroupExpiry is the x-expires put on the queues of a group the caller marked as
	// temporary (bus.WithTemporaryGroup: the CLI's own groups, the demo's): RabbitMQ deletes
	// such a queue once it has had no consumer for this long. Close deletes them at once; the
	// expiry covers a process that dies without closing. Queues of other groups never
	// expire. Default: 30m.
	TemporaryGroupExpiry time.Duration `yaml:"temporary_group_expiry"`
	// DeliveryLimit is a quorum queue's x-delivery-limit: after this many requeues of a message
	// (nacks, or consumers lost while it was out) the broker dead-letters it. It is declared
	// explicitly because RabbitMQ 4 otherwise applies 20 and, without a dead-letter target,
	// discards the message. Unlimited (-1) is not offered: RabbitMQ 3.x accepts -1 but
	// dead-letters at the first requeue (seen on 3.10.8). 0 declares none, for queues declared
	// before this setting existed: RabbitMQ refuses to redeclare a queue with other arguments
	// (PRECONDITION_FAILED); with 0 and dead_letter_queue "" such queues keep working, or delete
	// them once drained. Default: 1000000.
	DeliveryLimit int64 `yaml:"delivery_limit"`
	// DeadLetterQueue names the queue that takes a group queue's dead letters (delivery limit
	// reached, and x-message-ttl or x-max-length drops); "{queue}" stands for the group's queue.
	// The driver declares it beside the group's queue, of the same type, and points
	// x-dead-letter-exchange (the default exchange) and x-dead-letter-routing-key at it, so the
	// broker never discards a message. "" declares no dead-letter target (route dead letters
	// yourself with a policy). Quorum and classic queues. Default: "{queue}.dead".
	DeadLetterQueue string `yaml:"dead_letter_queue"`
	// MaxLengthBytes bounds every classic and quorum queue the bus declares (x-max-length-bytes):
	// the total size of the message bodies it holds. A group's queue that is full refuses new
	// messages (Overflow), so a group that stopped consuming makes Publish fail loudly instead
	// of its queue growing until the broker's memory or disk alarm blocks every publisher on
	// the cluster. 1 GiB holds about a million 1 KiB events, hours of backlog at the rates a
	// service publishes, while a few abandoned queues stay far below a broker's disk. 0 leaves
	// queues unbounded. Queues declared before without the bound must be deleted (or this set to
	// 0 for them): RabbitMQ refuses to redeclare a queue with other arguments. Stream queues
	// are bounded by stream.max_age and stream.max_bytes instead. Default: 1073741824 (1 GiB).
	MaxLengthBytes int64 `yaml:"max_length_bytes"`
	// MaxLength bounds the number of messages in each queue (x-max-length); 0 means no limit
	// by count. Default: 0.
	MaxLength int64 `yaml:"max_length"`
	// Overflow is what a full queue does with a new message (x-overflow): "reject-publish"
	// refuses it, the broker nacks it and Publish fails at once with an error wrapping ErrNacked
	// and bus.ErrUnavailable;
	// "drop-head" drops the queue's oldest message instead, silently. Queues of temporary and
	// exclusive groups (tooling: the CLI's consume, the demo) always drop their oldest, so that
	// a stalled tool never makes a service's Publish fail. Default: "reject-publish".
	Overflow string `yaml:"overflow"`
	// Arguments are further x-arguments for queue.declare, e.g. {x-message-ttl: 86400000}. Every instance must declare the same ones. x-queue-type,
	// x-single-active-consumer, x-delivery-limit, the dead-letter target, x-max-length, x-max-length-bytes and
	// x-overflow are set by the
	// fields above. Default: none.
	Arguments map[string]any `yaml:"arguments"`
}

// StreamConfig is rabbitmq.stream: settings for queue type "stream".
type StreamConfig struct {
	// Name of a topic's stream; must hold "{topic}". Every consumer group reads the same stream.
	// Default: "{topic}".
	Name string `yaml:"name"`
	// MaxAge is the retention by age (x-max-age); 0 keeps data until MaxBytes is reached.
	// Default: 168h (7 days, like Kafka's default retention).
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes is the retention by size (x-max-length-bytes); 0 means no size limit.
	// Default: 0.
	MaxBytes int64 `yaml:"max_bytes"`
}

// RenamedKeys points start_from, which lived here before, to rabbitmq.consumer, where every
// backend section has it.
func (c *StreamConfig) RenamedKeys() map[string]string {
	return map[string]string{"start_from": "rabbitmq.consumer.start_from"}
}

// PublisherConfig is rabbitmq.publisher.
type PublisherConfig struct {
	// Confirms puts publishing channels in confirm mode: Publish returns only after the broker
	// has taken responsibility for every message (written persistent messages to disk, or to a
	// quorum of replicas). Off, a publish can "succeed" while the broker never stored it.
	// Default: true.
	Confirms bool `yaml:"confirms"`
	// Persistent marks messages persistent (delivery mode 2) so durable queues keep them across
	// a restart. Default: true.
	Persistent bool `yaml:"persistent"`
	// Mandatory publishes with the mandatory flag: a message that no queue is bound to take is
	// returned by the broker and Publish fails with ErrUnroutable, instead of RabbitMQ dropping
	// it silently. Default: true.
	Mandatory bool `yaml:"mandatory"`
	// Channels is the size of the pool of publishing channels. Concurrent Publish calls share
	// them round robin, each pipelining its messages on one channel, so messages in flight grow
	// with the callers, not with the pool. Default: 8.
	Channels int `yaml:"channels"`
	// Timeout bounds a Publish whose context has no deadline: while the broker is unreachable,
	// Publish retries with the reconnect backoff until the context's deadline, or this long.
	// Default: 30s.
	Timeout time.Duration `yaml:"timeout"`
	// DeclareConsumerGroup makes Publish declare and bind the queue of ConsumerGroup for each
	// topic before the first message, so messages wait for that group even before it first
	// subscribes. Only for a service that reads back every topic it publishes: a queue that
	// nobody reads fills up to queue.max_length_bytes and then makes every Publish to its
	// topic fail. Default: false (a service usually publishes topics that other services
	// read: list those in DeclareGroups).
	DeclareConsumerGroup bool `yaml:"declare_consumer_group"`
	// DeclareGroups lists the consumer groups whose queues Publish declares for each topic
	// before the first message, so messages wait for them even before they first subscribe.
	// With none, a group keeps messages only once it has subscribed, and a Publish to a topic
	// that no group's queue is bound to fails with ErrUnroutable (publisher.mandatory).
	// Default: none.
	DeclareGroups []string `yaml:"declare_groups"`
	// MaxMessageBytes is the largest message Publish sends, counted as its payload plus its
	// metadata keys and values: Publish refuses a larger one before sending, with an error
	// wrapping bus.ErrTooLarge. RabbitMQ's own limit (max_message_size) is 128 MiB by default,
	// far more than a queue should carry per message; a message above the broker's limit
	// would close the publishing channel instead of failing alone. Default: 1048576 (1 MiB).
	MaxMessageBytes int `yaml:"max_message_bytes"`
}

// ConsumerConfig is rabbitmq.consumer.
type ConsumerConfig struct {
	// StartFrom is where a subscription to a stream queue (queue.type: stream) starts reading:
	// "oldest" (x-stream-offset first) or "newest" (next). AMQP consumers of a stream have no
	// stored offset, so every subscription starts here: oldest re-reads the retained history
	// on each start (duplicates, never loss). Classic and quorum queues ignore it: a group's
	// queue holds what was published since it was declared. Default: "oldest".
	StartFrom string `yaml:"start_from"`
	// MaxInFlight is how many messages the subscriber hands out before earlier ones are acked.
	// 1 (the default) hands them out one at a time, in queue order; more lets the router run
	// that many handlers at once (each message is acked on its own), and declares the
	// Pipelining capability. At most Prefetch. Default: 1.
	MaxInFlight int `yaml:"max_in_flight"`
	// NackDelay is the pause before a nacked message goes back: requeued to the broker (which
	// may give it to another instance), or, with a single active consumer or a stream, handed
	// out again in place so that order is kept. Default: 100ms.
	NackDelay time.Duration `yaml:"nack_delay"`
	// DrainTimeout is how long Close, or the end of a subscription's context, waits for
	// messages already handed out to be acked or nacked, keeping their channel open (so that
	// the settle reaches the broker) and their contexts alive. Then the channel closes, and
	// the broker requeues every message it has no ack for: those still in a handler and those
	// prefetched but never handed out. Default: 10s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	// Prefetch is the channel's QoS prefetch count: how many unacked messages the broker sends
	// ahead, so the next message is already here when a handler acks. Default: 100.
	Prefetch int `yaml:"prefetch"`
}

// Queue types.
const (
	QueueClassic = "classic"
	QueueQuorum  = "quorum"
	QueueStream  = "stream"
)

// What a full queue does (queue.overflow).
const (
	OverflowRejectPublish = "reject-publish"
	OverflowDropHead      = "drop-head"
)

// DefaultConfig returns the configuration used when the file has no rabbitmq: section.
func DefaultConfig() *Config {
	return &Config{
		Host:           "127.0.0.1",
		Port:           5672,
		VHost:          "/",
		Username:       "guest",
		Password:       "guest",
		ConnectionName: "eventbus",
		Heartbeat:      10 * time.Second,
		DialTimeout:    10 * time.Second,
		Reconnect:      ReconnectConfig{InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Second},
		ConsumerGroup:  "eventbus",
		Exchange:       ExchangeConfig{Name: "eventbus", Type: "topic", Durable: true},
		Queue: QueueConfig{
			Type:                 QueueQuorum,
			Name:                 "{group}.{topic}",
			Durable:              true,
			TemporaryGroupExpiry: 30 * time.Minute,
			DeliveryLimit:        1_000_000,
			DeadLetterQueue:      "{queue}.dead",
			MaxLengthBytes:       1 << 30,
			Overflow:             OverflowRejectPublish,
		},
		Stream: StreamConfig{Name: "{topic}", MaxAge: 7 * 24 * time.Hour},
		Publisher: PublisherConfig{
			Confirms:        true,
			Persistent:      true,
			Mandatory:       true,
			Channels:        8,
			Timeout:         30 * time.Second,
			MaxMessageBytes: 1 << 20,
		},
		Consumer: ConsumerConfig{StartFrom: "oldest", Prefetch: 100, MaxInFlight: 1, NackDelay: 100 * time.Millisecond, DrainTimeout: 10 * time.Second},
	}
}

// reservedArguments are set from typed fields; giving them in queue.arguments would let the two
// disagree.
var reservedArguments = map[string]string{
	"x-queue-type":              "queue.type",
	"x-single-active-consumer":  "queue.single_active_consumer",
	"x-expires":                 "queue.temporary_group_expiry (for temporary groups)",
	"x-delivery-limit":          "queue.delivery_limit",
	"x-dead-letter-exchange":    "queue.dead_letter_queue",
	"x-dead-letter-routing-key": "queue.dead_letter_queue",
	"x-max-length":              "queue.max_length",
	"x-max-length-bytes":        "queue.max_length_bytes",
	"x-overflow":                "queue.overflow",
}

// bound puts queue.max_length_bytes, queue.max_length and queue.overflow on the arguments of a
// classic or quorum queue. tooling marks the queue of a temporary or exclusive group: it drops
// its oldest messages when full, because with reject-publish a stalled `eventbus consume` would
// make the publishes of every service on its topic fail.
func (t topology) bound(args amqp.Table, tooling bool) {
	q := t.cfg.Queue
	if q.MaxLengthBytes > 0 {
		args["x-max-length-bytes"] = q.MaxLengthBytes
	}
	if q.MaxLength > 0 {
		args["x-max-length"] = q.MaxLength
	}
	if q.MaxLengthBytes > 0 || q.MaxLength > 0 {
		overflow := q.Overflow
		if tooling {
			overflow = OverflowDropHead
		}
		args["x-overflow"] = overflow
	}
}

// Validate reports every problem with paths relative to the rabbitmq: section.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, config.Invalid(path, format, args...)) }

	if c.URL != "" {
		u, err := c.parseURL()
		switch {
		case err != nil:
			add("url", "%v", err)
		case u.Host == "":
			add("url", "has no host")
		case u.Scheme == "amqp" && c.TLS.Enabled:
			add("url", "%s", errPlainURLWithTLS)
		}
	} else {
		if c.Host == "" {
			add("host", "must not be empty (or give url)")
		}
		if c.Port < 1 || c.Port > 65535 {
			add("port", "%d: must be from 1 to 65535", c.Port)
		}
		if c.VHost == "" {
			add("vhost", `must not be empty; the default vhost is "/"`)
		}
		if c.Username == "" {
			add("username", "must not be empty")
		}
	}
	for _, f := range []struct {
		path string
		d    time.Duration
	}{
		{"heartbeat", c.Heartbeat}, {"dial_timeout", c.DialTimeout},
		{"reconnect.initial_interval", c.Reconnect.InitialInterval}, {"reconnect.max_interval", c.Reconnect.MaxInterval},
		{"publisher.timeout", c.Publisher.Timeout}, {"queue.temporary_group_expiry", c.Queue.TemporaryGroupExpiry},
	} {
		if f.d <= 0 {
			add(f.path, "must be positive")
		}
	}
	if c.Reconnect.MaxInterval < c.Reconnect.InitialInterval {
		add("reconnect.max_interval", "must be at least reconnect.initial_interval (%s)", c.Reconnect.InitialInterval)
	}
	if c.Queue.TemporaryGroupExpiry > 0 && c.Queue.TemporaryGroupExpiry < time.Second {
		add("queue.temporary_group_expiry", "must be at least 1s")
	}
	if c.Queue.DeliveryLimit < 0 {
		add("queue.delivery_limit", "%d: must not be negative (RabbitMQ 3.x reads -1 as dead-letter at the first requeue); 0 declares no limit", c.Queue.DeliveryLimit)
	}
	if c.Queue.DeadLetterQueue != "" && !strings.Contains(c.Queue.DeadLetterQueue, "{queue}") {
		add("queue.dead_letter_queue", `%q must contain "{queue}", or groups would share a dead-letter queue`, c.Queue.DeadLetterQueue)
	}

	switch c.Exchange.Type {
	case "topic", "direct":
	case "fanout":
		if !strings.Contains(c.Exchange.Name, "{topic}") {
			add("exchange.type", `fanout sends every message to every bound queue: give exchange.name a "{topic}" so each topic has its own exchange`)
		}
	default:
		add("exchange.type", "%q: want topic, direct or fanout", c.Exchange.Type)
	}
	if c.Exchange.Name == "" {
		add("exchange.name", `must not be empty (RabbitMQ's default exchange cannot be bound); e.g. "eventbus" or "{topic}"`)
	} else if strings.HasPrefix(c.Exchange.Name, "amq.") {
		add("exchange.name", "%q: names starting with amq. are reserved by RabbitMQ", c.Exchange.Name)
	}

	switch c.Queue.Type {
	case QueueClassic:
	case QueueQuorum, QueueStream:
		if !c.Queue.Durable {
			add("queue.durable", "%s queues are always durable: set durable: true or type: classic", c.Queue.Type)
		}
	default:
		add("queue.type", "%q: want quorum, classic or stream", c.Queue.Type)
	}
	if c.Queue.Type == QueueStream {
		if !strings.Contains(c.Stream.Name, "{topic}") {
			add("stream.name", `%q must contain "{topic}"`, c.Stream.Name)
		}
		if c.Queue.SingleActiveConsumer {
			add("queue.single_active_consumer", "is not available for stream queues over AMQP; a stream is read in order by every subscriber anyway")
		}
	} else if !strings.Contains(c.Queue.Name, "{topic}") || !strings.Contains(c.Queue.Name, "{group}") {
		add("queue.name", `%q must contain "{topic}" and "{group}", or topics and groups would share a queue`, c.Queue.Name)
	}
	if c.Consumer.StartFrom != "oldest" && c.Consumer.StartFrom != "newest" {
		add("consumer.start_from", "%q: want oldest or newest", c.Consumer.StartFrom)
	}
	if c.Stream.MaxAge < 0 {
		add("stream.max_age", "must not be negative")
	}
	if c.Stream.MaxBytes < 0 {
		add("stream.max_bytes", "must not be negative")
	}
	if c.Queue.MaxLengthBytes < 0 {
		add("queue.max_length_bytes", "must not be negative (0 leaves queues unbounded)")
	}
	if c.Queue.MaxLength < 0 {
		add("queue.max_length", "must not be negative (0 means no limit by count)")
	}
	if c.Queue.Overflow != OverflowRejectPublish && c.Queue.Overflow != OverflowDropHead {
		add("queue.overflow", "%q: want reject-publish or drop-head", c.Queue.Overflow)
	}
	keys := make([]string, 0, len(c.Queue.Arguments))
	for k := range c.Queue.Arguments {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if field, ok := reservedArguments[k]; ok {
			add("queue.arguments."+k, "is set by %s; remove it here", field)
			continue
		}
		if _, err := toTable(map[string]any{k: c.Queue.Arguments[k]}); err != nil {
			add("queue.arguments."+k, "%v", err)
		}
	}

	if c.Publisher.Mandatory && !c.Publisher.Confirms {
		add("publisher.mandatory", "needs publisher.confirms: without confirms Publish returns before the broker could return an unroutable message")
	}
	if c.Publisher.Channels < 1 {
		add("publisher.channels", "must be at least 1")
	}
	if c.Publisher.MaxMessageBytes < 1 {
		add("publisher.max_message_bytes", "must be at least 1")
	}
	for i, g := range c.Publisher.DeclareGroups {
		if g == "" {
			add("publisher.declare_groups["+strconv.Itoa(i)+"]", "must not be empty")
		}
	}
	if c.Consumer.Prefetch < 1 {
		add("consumer.prefetch", "must be at least 1 (0 would mean unlimited, which lets one consumer take a whole backlog)")
	}
	if c.Consumer.MaxInFlight < 1 {
		add("consumer.max_in_flight", "must be at least 1")
	} else if c.Consumer.Prefetch >= 1 && c.Consumer.MaxInFlight > c.Consumer.Prefetch {
		add("consumer.max_in_flight", "%d: must be at most consumer.prefetch (%d)", c.Consumer.MaxInFlight, c.Consumer.Prefetch)
	}
	if c.Consumer.DrainTimeout <= 0 {
		add("consumer.drain_timeout", "must be positive, e.g. 10s")
	}
	if c.Consumer.NackDelay < 0 {
		add("consumer.nack_delay", "must not be negative")
	}
	errs = append(errs, config.Nest("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// uri returns the AMQP URI to dial, built from URL or from the separate fields.
func (c *Config) uri() (amqp.URI, error) {
	if c.URL != "" {
		u, err := c.parseURL()
		if err != nil {
			return amqp.URI{}, fmt.Errorf("url: %w", err)
		}
		if u.Scheme == "amqp" && c.TLS.Enabled {
			// amqp091 takes the scheme's word for it: TLS settings with amqp:// dial in plaintext.
			return amqp.URI{}, fmt.Errorf("url: %s", errPlainURLWithTLS)
		}
		return u, nil
	}
	scheme := "amqp"
	if c.TLS.Enabled {
		scheme = "amqps"
	}
	return amqp.URI{
		Scheme: scheme, Host: c.Host, Port: c.Port, Vhost: c.VHost,
		Username: c.Username, Password: c.Password.Value(),
	}, nil
}

// endpoint names the broker for logs and errors, without credentials.
func endpoint(u amqp.URI) string {
	vhost := u.Vhost
	if vhost == "" {
		vhost = "/"
	}
	return fmt.Sprintf("%s://%s/%s", u.Scheme, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)), url.PathEscape(vhost))
}

// amqpConfig translates c into amqp091's dial configuration.
func (c *Config) amqpConfig(u amqp.URI) (amqp.Config, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(c.ConnectionName)
	ac := amqp.Config{
		SASL:       []amqp.Authentication{&amqp.PlainAuth{Username: u.Username, Password: u.Password}},
		Vhost:      u.Vhost,
		Heartbeat:  c.Heartbeat,
		Properties: props,
		Dial:       amqp.DefaultDial(c.DialTimeout),
	}
	tc, err := c.TLS.Build()
	if err != nil {
		return amqp.Config{}, err
	}
	if tc == nil && u.Scheme == "amqps" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if tc != nil && tc.ServerName == "" {
		tc.ServerName = u.Host
	}
	ac.TLSClientConfig = tc
	return ac, nil
}

const errPlainURLWithTLS = "is amqp:// (plaintext) while tls.enabled is true: use amqps:// and the broker's TLS listener (usually port 5671)"

// parseURL parses URL as amqp091 does, with errors that hold no part of the URL's user info:
// net/url quotes the whole URL, and a password holding / ? or # ends the authority early, so
// pieces of it would show up as a host, port or vhost. Such a URL is refused even when it
// happens to parse ("1234/x" reads as a port and a vhost).
func (c *Config) parseURL() (amqp.URI, error) {
	raw := c.URL.Value()
	shown := raw
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if strings.ContainsAny(rest[:at], "/?#") {
				return amqp.URI{}, errors.New("the user name or password holds / ? or #: percent-encode them in the URL (%2F %3F %23)")
			}
			shown = scheme + "://redacted@" + rest[at+1:]
		}
	}
	u, err := amqp.ParseURI(raw)
	if err == nil {
		return u, nil
	}
	// Describe the problem from the URL without its user info; if that parses, the user info
	// was the problem.
	if _, err := amqp.ParseURI(shown); err != nil {
		return amqp.URI{}, fmt.Errorf("not an amqp:// or amqps:// URL (%v)", err)
	}
	return amqp.URI{}, errors.New("not an amqp:// or amqps:// URL: the user name or password is not valid in a URL (percent-encode reserved characters)")
}

// toTable converts YAML-decoded values (map[string]any, []any, ints) into an amqp.Table and
// checks that AMQP can carry them.
func toTable(m map[string]any) (amqp.Table, error) {
	t := amqp.Table{}
	for k, v := range m {
		t[k] = toAMQPValue(v)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

func toAMQPValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		t := amqp.Table{}
		for k, e := range x {
			t[k] = toAMQPValue(e)
		}
		return t
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toAMQPValue(e)
		}
		return out
	case uint:
		return int64(x)
	case uint64:
		return int64(x)
	}
	return v
}

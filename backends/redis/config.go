package redis

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/eventbus-go/eventbus/config"
)

// Config is the redis: section of the config file. Every field's comment gives its default.
type Config struct {
	// Addrs are the host:port addresses of the server. One address is a single server (or a
	// primary behind a proxy); several are the seed nodes of a Redis Cluster. Default:
	// [127.0.0.1:6379].
	Addrs []string `yaml:"addrs"`
	// Username for Redis 6 ACLs; "" uses the default user. Default: "".
	Username string `yaml:"username"`
	// Password for AUTH; give it as ${VAR} or ${file:PATH}. Never logged or printed. Default: "".
	Password config.Secret `yaml:"password"`
	// DB is the database number on a single server; a Cluster has only database 0. Default: 0.
	DB int `yaml:"db"`

	// ConsumerGroup is the stream consumer group subscribers join. Instances of one service share
	// a group and split the entries; every group gets every entry. Default: "eventbus".
	ConsumerGroup string `yaml:"consumer_group"`

	Consumer  ConsumerConfig  `yaml:"consumer"`
	Publisher PublisherConfig `yaml:"publisher"`

	// DialTimeout bounds connecting. Default: 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout and WriteTimeout bound one command's reply and send; a blocking read waits
	// consumer.block_time on top. Default: 3s each.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`

	TLS config.TLS `yaml:"tls"`

	// OnDataLoss is called, besides an error log, when a subscription finds that its consumer
	// group vanished (a restart without persistence, FLUSHALL, the stream deleted or evicted)
	// or that pending entries were gone from the stream when claimed. Set in code only.
	OnDataLoss func(DataLoss) `yaml:"-"`
}

// RenamedKeys points the keys of earlier versions to the ones every backend section shares:
// the consumer-side settings moved into redis.consumer, maxlen into redis.publisher.
func (c *Config) RenamedKeys() map[string]string {
	m := map[string]string{
		"nack_resend_delay": "redis.consumer.nack_delay",
		"maxlen":            "redis.publisher.max_len",
	}
	for _, k := range []string{"consumer_name", "start_from", "read_batch", "max_in_flight", "block_time",
		"drain_timeout", "claim_interval", "min_idle", "claim_batch", "consumer_timeout"} {
		m[k] = "redis.consumer." + k
	}
	return m
}

// ConsumerConfig is redis.consumer: how subscribers read their consumer group.
type ConsumerConfig struct {
	// StartFrom is where a group that does not exist yet starts reading when the subscriber
	// creates it: "oldest" (every entry the stream retains), "newest" (only entries added from
	// then on), a stream id such as "1732363200000-0", or an RFC 3339 time (stream ids are
	// millisecond timestamps, so this replays by time). An existing group keeps its position;
	// move it with Rewind. Default: "oldest", so a new service misses nothing retained.
	StartFrom string `yaml:"start_from"`
	// MaxInFlight is how many messages a subscription hands out before earlier ones are acked or
	// nacked. 1 hands them out one at a time, in stream order; more lets handlers run in parallel
	// (declares the Pipelining capability) and gives up that order. Default: 1.
	MaxInFlight int `yaml:"max_in_flight"`
	// NackDelay is the pause before a nacked message is handed out again. Default: 100ms.
	NackDelay time.Duration `yaml:"nack_delay"`
	// DrainTimeout is how long Close, or the end of a subscription, waits for messages already
	// handed out to be acked or nacked, and for their acks to reach Redis; their contexts stay
	// alive until then. Entries still unacked after it, and those read ahead but never handed
	// out, stay pending with their idle time set to MinIdle, so that another consumer's next
	// claim (within ClaimInterval) takes them. Default: 10s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	// ConsumerName names this process inside the group. Keep it stable across restarts of the
	// same instance (a pod name) so that a restarted instance takes back its own pending entries
	// at once instead of waiting for them to be claimed. A second subscription to the same
	// stream and group in one process gets "-2", "-3", ... appended. Default: "" meaning
	// hostname-pid, which is stable for a container whose process restarts in place.
	ConsumerName string `yaml:"consumer_name"`
	// ReadBatch is how many entries one XREADGROUP asks for (COUNT). Larger batches read faster;
	// entries read but not yet handled stay pending on this consumer, so with slow handlers and
	// several consumers a smaller batch shares the work more evenly. Default: 100.
	ReadBatch int `yaml:"read_batch"`
	// BlockTime is how long one XREADGROUP waits for new entries. It bounds how quickly Close
	// returns, since a blocked read cannot be interrupted. Default: 1s.
	BlockTime time.Duration `yaml:"block_time"`
	// ClaimInterval is how often a subscription looks for entries that other consumers of the
	// group left pending for longer than MinIdle, and claims them (XAUTOCLAIM). Default: 5s.
	ClaimInterval time.Duration `yaml:"claim_interval"`
	// MinIdle is how long an entry must have been pending before another consumer claims it:
	// the subscriber renews the entries it holds (buffered or in a handler) every third of it,
	// so only the entries of a consumer that stopped, or lost its connection to Redis, reach
	// it. A handler that never returns keeps its entry forever. Default: 1m.
	MinIdle time.Duration `yaml:"min_idle"`
	// ClaimBatch is how many pending entries one XAUTOCLAIM call examines. Default: 100.
	ClaimBatch int `yaml:"claim_batch"`
	// ConsumerTimeout removes a consumer from the group once it has been idle this long and has
	// nothing pending (checked and deleted atomically, so no pending entry is ever deleted with
	// it). 0 never removes consumers. Must exceed MinIdle. Default: 1h.
	ConsumerTimeout time.Duration `yaml:"consumer_timeout"`
}

// RenamedKeys points the keys of earlier versions to the ones every backend section shares.
func (c *ConsumerConfig) RenamedKeys() map[string]string {
	return map[string]string{"nack_resend_delay": "redis.consumer.nack_delay"}
}

// PublisherConfig is redis.publisher. Retention and MaxLen bound every stream the bus publishes
// to, as Kafka's retention bounds its topics: Redis keeps streams in memory, so a stream nobody
// trims grows with traffic until Redis refuses writes or evicts keys. Trimming happens on each
// publish (XADD with MINID or MAXLEN, approximate "~": Redis drops only whole nodes of about 100
// entries, stream-node-max-entries, so a stream holds a little more than the bound). It bounds
// replay, and an entry trimmed before a slow group read it is gone for that group: pending
// entries trimmed that way are reported as a DataLoss.
type PublisherConfig struct {
	// Retention trims entries older than this (XADD ... MINID ~ <now - retention>; stream ids
	// are millisecond timestamps). 0 keeps entries whatever their age: set it only together
	// with MaxLen, or on purpose. Default: 168h (7 days, Kafka's default retention.ms).
	Retention time.Duration `yaml:"retention"`
	// MaxLen trims a stream to about this many entries (MAXLEN ~). 0 means no limit by count.
	// With Retention as well, both apply. Default: 0.
	MaxLen int64 `yaml:"max_len"`
	// Topics overrides Retention and MaxLen for single topics (stream keys), e.g.
	// {audit.events: {retention: 2160h}, clicks: {retention: 24h, max_len: 1000000}}; a key a
	// topic leaves out keeps the value above. Default: none.
	Topics map[string]TopicLimits `yaml:"topics,omitempty"`
	// MaxMessageBytes is the largest message Publish sends, counted as its payload plus its
	// metadata keys and values: Publish refuses a larger one before sending, with an error
	// wrapping bus.ErrTooLarge. Redis itself takes up to proto-max-bulk-len (512 MB by default)
	// per field, far more than a stream entry should hold; the limit keeps one oversized event
	// from filling memory and stalling every consumer that reads it. Default: 1048576 (1 MiB).
	MaxMessageBytes int `yaml:"max_message_bytes"`
}

// TopicLimits is an entry of redis.publisher.topics: a topic's own retention and max_len.
type TopicLimits struct {
	// Retention replaces publisher.retention for the topic; 0 keeps its entries whatever their
	// age. Default: publisher.retention.
	Retention *time.Duration `yaml:"retention,omitempty"`
	// MaxLen replaces publisher.max_len for the topic; 0 means no limit by count.
	// Default: publisher.max_len.
	MaxLen *int64 `yaml:"max_len,omitempty"`
}

// limits returns the retention and max_len that apply to topic.
func (c *PublisherConfig) limits(topic string) (retention time.Duration, maxLen int64) {
	retention, maxLen = c.Retention, c.MaxLen
	if t, ok := c.Topics[topic]; ok {
		if t.Retention != nil {
			retention = *t.Retention
		}
		if t.MaxLen != nil {
			maxLen = *t.MaxLen
		}
	}
	return retention, maxLen
}

// DefaultConfig returns the configuration used when the file has no redis: section.
func DefaultConfig() *Config {
	return &Config{
		Addrs:         []string{"127.0.0.1:6379"},
		ConsumerGroup: "eventbus",
		Consumer: ConsumerConfig{
			StartFrom:       "oldest",
			ReadBatch:       100,
			MaxInFlight:     1,
			BlockTime:       time.Second,
			NackDelay:       100 * time.Millisecond,
			DrainTimeout:    10 * time.Second,
			ClaimInterval:   5 * time.Second,
			MinIdle:         time.Minute,
			ClaimBatch:      100,
			ConsumerTimeout: time.Hour,
		},
		Publisher:    PublisherConfig{Retention: 7 * 24 * time.Hour, MaxMessageBytes: 1 << 20},
		DialTimeout:  5 * time.Second,
		ReadTimeout:  3 * time.Second,
		WriteTimeout: 3 * time.Second,
	}
}

var streamIDPattern = regexp.MustCompile(`^\d+(-\d+)?$`)

// startID translates StartFrom into the id XGROUP CREATE takes.
func startID(s string) (string, error) {
	switch s {
	case "oldest":
		return "0", nil
	case "newest":
		return "$", nil
	}
	if streamIDPattern.MatchString(s) {
		return s, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return IDBefore(t), nil
	}
	return "", fmt.Errorf("%q: want oldest, newest, a stream id such as 1732363200000-0, or an RFC 3339 time", s)
}

// IDBefore returns the stream id just before time t, so that a group positioned there reads
// every entry added at or after t (stream ids are <milliseconds>-<sequence>).
func IDBefore(t time.Time) string {
	ms := t.UnixMilli()
	if ms <= 0 {
		return "0"
	}
	return strconv.FormatInt(ms-1, 10) + "-18446744073709551615"
}

// Validate reports every problem with paths relative to the redis: section.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, config.Invalid(path, format, args...)) }

	if len(c.Addrs) == 0 {
		add("addrs", "must list at least one host:port")
	}
	for i, a := range c.Addrs {
		if err := checkHostPort(a); err != nil {
			add("addrs["+strconv.Itoa(i)+"]", "%q: %v", a, err)
		}
	}
	if c.DB < 0 {
		add("db", "must not be negative")
	}
	if c.DB != 0 && len(c.Addrs) > 1 {
		add("db", "a Redis Cluster (several addrs) has only database 0")
	}
	if c.ConsumerGroup == "" {
		add("consumer_group", "must not be empty: the backend always reads through a consumer group")
	}
	errs = append(errs, config.Nest("consumer", c.Consumer.validate()))
	if c.Publisher.Retention < 0 {
		add("publisher.retention", "must not be negative (0 keeps entries whatever their age)")
	} else if c.Publisher.Retention > 0 && c.Publisher.Retention < time.Millisecond {
		add("publisher.retention", "%s: must be at least 1ms (stream ids count milliseconds)", c.Publisher.Retention)
	}
	if c.Publisher.MaxLen < 0 {
		add("publisher.max_len", "must not be negative (0 means no limit by count)")
	}
	topics := make([]string, 0, len(c.Publisher.Topics))
	for topic := range c.Publisher.Topics {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	for _, topic := range topics {
		l := c.Publisher.Topics[topic]
		if topic == "" {
			add("publisher.topics", "has an empty topic name")
		}
		if l.Retention != nil && *l.Retention < 0 {
			add("publisher.topics."+topic+".retention", "must not be negative (0 keeps entries whatever their age)")
		} else if l.Retention != nil && *l.Retention > 0 && *l.Retention < time.Millisecond {
			add("publisher.topics."+topic+".retention", "%s: must be at least 1ms (stream ids count milliseconds)", *l.Retention)
		}
		if l.MaxLen != nil && *l.MaxLen < 0 {
			add("publisher.topics."+topic+".max_len", "must not be negative (0 means no limit by count)")
		}
	}
	if c.Publisher.MaxMessageBytes < 1 {
		add("publisher.max_message_bytes", "must be at least 1")
	}
	for _, f := range []struct {
		path string
		d    time.Duration
	}{
		{"dial_timeout", c.DialTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout},
	} {
		if f.d <= 0 {
			add(f.path, "must be positive")
		}
	}
	errs = append(errs, config.Nest("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// validate reports every problem with paths relative to redis.consumer.
func (c *ConsumerConfig) validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, config.Invalid(path, format, args...)) }
	if strings.ContainsAny(c.ConsumerName, " \t\r\n") {
		add("consumer_name", "%q must not contain white space", c.ConsumerName)
	}
	if _, err := startID(c.StartFrom); err != nil {
		add("start_from", "%v", err)
	}
	if c.ReadBatch < 1 {
		add("read_batch", "must be at least 1")
	}
	if c.MaxInFlight < 1 {
		add("max_in_flight", "must be at least 1")
	}
	if c.ClaimBatch < 1 {
		add("claim_batch", "must be at least 1")
	}
	for _, f := range []struct {
		path string
		d    time.Duration
	}{
		{"block_time", c.BlockTime}, {"drain_timeout", c.DrainTimeout}, {"claim_interval", c.ClaimInterval},
		{"min_idle", c.MinIdle},
	} {
		if f.d <= 0 {
			add(f.path, "must be positive")
		}
	}
	if c.NackDelay < 0 {
		add("nack_delay", "must not be negative")
	}
	if c.ClaimInterval > 0 && c.MinIdle > 0 && 2*c.ClaimInterval > c.MinIdle {
		add("claim_interval", "must be at most half of min_idle (%s): held entries are renewed on that tick", c.MinIdle)
	}
	if c.ConsumerTimeout < 0 {
		add("consumer_timeout", "must not be negative (0 never removes consumers)")
	}
	if c.ConsumerTimeout > 0 && c.ConsumerTimeout <= c.MinIdle {
		add("consumer_timeout", "must be longer than min_idle (%s), or 0", c.MinIdle)
	}
	return errors.Join(errs...)
}

// consumerName is the configured name, or hostname-pid.
func (c *ConsumerConfig) consumerName() string {
	if c.ConsumerName != "" {
		return c.ConsumerName
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "eventbus"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" {
		return errors.New("host is empty")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return errors.New("port must be a number from 1 to 65535")
	}
	return nil
}

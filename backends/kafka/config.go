package kafka

import (
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/eventbus-go/eventbus/config"
)

// Config is the kafka: section of the config file. Every field's comment gives its default.
type Config struct {
	// Brokers are the bootstrap host:port addresses. Default: [127.0.0.1:9092], where
	// `eventbus dev` serves its embedded broker.
	Brokers []string `yaml:"brokers"`

	// Embedded starts a private in-process Kafka-protocol broker on a free loopback port and
	// uses it instead of Brokers: for demos, development and tests, never production. The
	// program must link it: import _ "github.com/eventbus-go/eventbus/backends/kafka/embedded".
	// Default: false.
	Embedded bool `yaml:"embedded"`
	// EmbeddedDataDir makes the embedded broker keep its data in this directory across restarts.
	// Default: "" (memory only).
	EmbeddedDataDir string `yaml:"embedded_data_dir"`

	// ClientID identifies this service to the brokers (quotas, logs). Default: "eventbus".
	ClientID string `yaml:"client_id"`
	// ConsumerGroup is the group subscribers join. Instances of one service share a group and
	// split the partitions; every group gets every message. "" reads every partition without a
	// group and commits nothing. Default: "eventbus".
	ConsumerGroup string `yaml:"consumer_group"`
	// Version is the Kafka protocol version the client speaks; at most the oldest broker's.
	// Default: "2.8.0".
	Version string `yaml:"version"`

	// DialTimeout bounds connecting to a broker. Default: 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout and WriteTimeout bound one request's response and send. Default: 30s each.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`

	Publisher PublisherConfig `yaml:"publisher"`
	Consumer  ConsumerConfig  `yaml:"consumer"`
	Topics    TopicsConfig    `yaml:"topics"`
	TLS       config.TLS      `yaml:"tls"`
	SASL      SASLConfig      `yaml:"sasl"`
}

// RenamedKeys points the keys of earlier versions to the ones every backend section shares.
func (c *Config) RenamedKeys() map[string]string {
	return map[string]string{
		"initial_offset": "kafka.consumer.start_from",
		"producer":       "kafka.publisher",
	}
}

// PublisherConfig is kafka.publisher (Sarama's producer).
type PublisherConfig struct {
	// Acks is how many replicas must have a record before Publish returns: "all" (every in-sync
	// replica), "leader" or "none". Default: "all"; anything less can lose acknowledged events.
	Acks string `yaml:"acks"`
	// Timeout is how long the broker waits for the replicas that Acks asks for. Default: 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how often a failed send is retried before Publish fails. Default: 10.
	Retries int `yaml:"retries"`
	// RetryBackoff is the wait between retries. Default: 250ms.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// MaxMessageBytes is the largest record Publish sends, measured as Sarama does (value, key,
	// headers and the record's overhead): Publish refuses a larger one before sending, with an
	// error wrapping bus.ErrTooLarge. Keep it at most the broker's message.max.bytes (or the
	// topic's max.message.bytes), whose default is about 1 MB; a record the broker refuses as
	// too large also fails with bus.ErrTooLarge. Default: 1000000 (Sarama's MaxMessageBytes).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// Compression is "none", "gzip", "snappy", "lz4" or "zstd". Default: "none".
	Compression string `yaml:"compression"`
}

// ConsumerConfig is kafka.consumer.
type ConsumerConfig struct {
	// StartFrom is where a group with no committed offset starts: "oldest" or "newest"
	// (Kafka's auto.offset.reset earliest/latest). Default: "oldest", so a new consumer misses
	// nothing the topic retains.
	StartFrom string `yaml:"start_from"`
	// MaxInFlight picks the subscriber and bounds how many records per partition it hands out
	// before earlier ones are acked. A positive value (the default, 1) uses eventbus's
	// pipelined consumer-group subscriber: it hands out up to MaxInFlight records per partition
	// beyond the first one not yet acked, acks each on its own and commits a partition's
	// offset only up to the first record not yet acked, so handlers can run in parallel
	// (router.ordering.concurrency, with MaxInFlight above 1) without giving up at-least-once;
	// a crashed consumer's successor handles again at most these plus what was acked since the
	// last commit (every commit_interval). On close it drains (see DrainTimeout). 1 hands a
	// partition's records out one at a time, in order. 0 uses Watermill's Kafka subscriber
	// instead, which also hands them out one at a time but, on close, drops the record in a
	// handler (its ack is not committed, and the next consumer handles it again) and may
	// lose the mark of one acked just before. Without a consumer_group, Watermill's subscriber
	// is used whatever the value. Default: 1.
	MaxInFlight int `yaml:"max_in_flight"`
	// NackDelay is the pause before a nacked message is handed out again. Default: 100ms.
	NackDelay time.Duration `yaml:"nack_delay"`
	// DrainTimeout is how long the pipelined subscriber waits, when it closes (or the
	// subscription's context ends) or loses a partition in a rebalance, for records already
	// handed out to be acked so their offsets are committed; their contexts stay alive until
	// then, and are cancelled after. Records fetched but not handed out are not committed: the
	// partition's next owner starts at them. Under rebalance_timeout when max_in_flight is
	// positive. Default: 5s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	// SessionTimeout is how long the group waits for a silent member before rebalancing.
	// Default: 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// HeartbeatInterval is how often a member tells the group it is alive; under a third of
	// SessionTimeout. Default: 3s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// RebalanceTimeout is how long members get to finish in-flight work on a rebalance.
	// Default: 60s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// ReconnectDelay is the pause between attempts to rejoin after the group session ends with
	// an error. Default: 1s.
	ReconnectDelay time.Duration `yaml:"reconnect_delay"`
	// CommitInterval is how often the offsets of handled records are committed (Sarama's
	// auto-commit interval); both subscribers also commit when a partition is drained, on a
	// rebalance and on close. A consumer killed without a clean close (kill -9, OOM) is
	// replaced by one that handles again what was handled since the last commit: about this
	// long's worth of records. Sarama's own default of 1s replayed up to a second. Default: 100ms.
	CommitInterval time.Duration `yaml:"commit_interval"`
}

// RenamedKeys points the keys of earlier versions to the ones every backend section shares.
func (c *ConsumerConfig) RenamedKeys() map[string]string {
	return map[string]string{"nack_resend_delay": "kafka.consumer.nack_delay"}
}

// TopicsConfig is kafka.topics: how missing topics are created.
type TopicsConfig struct {
	// Create makes the publisher and subscriber create a missing topic through the admin API
	// before first use, with Partitions and ReplicationFactor. When false, a missing topic is
	// the broker's business (auto.create.topics.enable). Default: true.
	Create bool `yaml:"create"`
	// Partitions of a created topic; more partitions let more instances of a group consume in
	// parallel. Default: 1.
	Partitions int32 `yaml:"partitions"`
	// ReplicationFactor of a created topic. Default: 1, which suits one broker; use 3 on a
	// production cluster.
	ReplicationFactor int16 `yaml:"replication_factor"`
	// Retention is the retention.ms a created topic gets: records older than this are
	// deleted, whether or not every group read them. 0 leaves it to the broker's default
	// (log.retention.hours, 168h unless the cluster changed it). Topics that already exist
	// keep theirs. Default: 0.
	Retention time.Duration `yaml:"retention"`
	// RetentionBytes is the retention.bytes a created topic gets: the most each partition
	// keeps before its oldest records are deleted. 0 leaves it to the broker's default
	// (log.retention.bytes, no limit by size unless the cluster set one). Default: 0.
	RetentionBytes int64 `yaml:"retention_bytes"`
}

// configEntries are the topic configs a created topic gets beyond the broker's defaults.
func (c *TopicsConfig) configEntries() map[string]*string {
	entries := map[string]*string{}
	if c.Retention > 0 {
		ms := strconv.FormatInt(c.Retention.Milliseconds(), 10)
		entries["retention.ms"] = &ms
	}
	if c.RetentionBytes > 0 {
		b := strconv.FormatInt(c.RetentionBytes, 10)
		entries["retention.bytes"] = &b
	}
	if len(entries) == 0 {
		return nil
	}
	return entries
}

// SASLConfig is kafka.sasl.
type SASLConfig struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"; "" turns SASL off. Default: "".
	Mechanism string `yaml:"mechanism"`
	// Username for the mechanism.
	Username string `yaml:"username"`
	// Password for the mechanism; give it as ${VAR} or ${file:PATH}. Never logged or printed.
	Password config.Secret `yaml:"password"`
}

// DefaultConfig returns the configuration used when the file has no kafka: section.
func DefaultConfig() *Config {
	return &Config{
		Brokers:       []string{"127.0.0.1:9092"},
		ClientID:      "eventbus",
		ConsumerGroup: "eventbus",
		Version:       "2.8.0",
		DialTimeout:   10 * time.Second,
		ReadTimeout:   30 * time.Second,
		WriteTimeout:  30 * time.Second,
		Publisher: PublisherConfig{
			Acks:            "all",
			Timeout:         10 * time.Second,
			Retries:         10,
			RetryBackoff:    250 * time.Millisecond,
			MaxMessageBytes: 1000000,
			Compression:     "none",
		},
		Consumer: ConsumerConfig{
			StartFrom:         "oldest",
			MaxInFlight:       1,
			SessionTimeout:    10 * time.Second,
			HeartbeatInterval: 3 * time.Second,
			RebalanceTimeout:  60 * time.Second,
			NackDelay:         100 * time.Millisecond,
			ReconnectDelay:    time.Second,
			DrainTimeout:      5 * time.Second,
			CommitInterval:    100 * time.Millisecond,
		},
		Topics: TopicsConfig{Create: true, Partitions: 1, ReplicationFactor: 1},
	}
}

var (
	acksByName = map[string]sarama.RequiredAcks{
		"all": sarama.WaitForAll, "leader": sarama.WaitForLocal, "none": sarama.NoResponse,
	}
	compressionByName = map[string]sarama.CompressionCodec{
		"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
		"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
	}
)

// Validate reports every problem with paths relative to the kafka: section.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, config.Invalid(path, format, args...)) }

	if !c.Embedded {
		if len(c.Brokers) == 0 {
			add("brokers", "must list at least one host:port")
		}
		for i, b := range c.Brokers {
			if err := checkHostPort(b); err != nil {
				add("brokers["+strconv.Itoa(i)+"]", "%q: %v", b, err)
			}
		}
	}
	if c.EmbeddedDataDir != "" && !c.Embedded {
		add("embedded_data_dir", "is set but embedded is false")
	}
	if c.ClientID == "" {
		add("client_id", "must not be empty")
	}
	if c.Consumer.StartFrom != "oldest" && c.Consumer.StartFrom != "newest" {
		add("consumer.start_from", "%q: want oldest or newest", c.Consumer.StartFrom)
	}
	if _, err := sarama.ParseKafkaVersion(c.Version); err != nil {
		add("version", "%q is not a Kafka version such as 2.8.0", c.Version)
	}
	for _, f := range []struct {
		path string
		d    time.Duration
	}{
		{"dial_timeout", c.DialTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout},
		{"publisher.timeout", c.Publisher.Timeout}, {"consumer.session_timeout", c.Consumer.SessionTimeout},
		{"consumer.heartbeat_interval", c.Consumer.HeartbeatInterval}, {"consumer.rebalance_timeout", c.Consumer.RebalanceTimeout},
		{"consumer.commit_interval", c.Consumer.CommitInterval},
	} {
		if f.d <= 0 {
			add(f.path, "must be positive")
		}
	}
	if c.Consumer.MaxInFlight < 0 {
		add("consumer.max_in_flight", "must not be negative (0 selects Watermill's subscriber)")
	}
	if c.Consumer.DrainTimeout <= 0 {
		add("consumer.drain_timeout", "must be positive")
	} else if c.Consumer.MaxInFlight > 0 && c.ConsumerGroup != "" && c.Consumer.DrainTimeout >= c.Consumer.RebalanceTimeout {
		add("consumer.drain_timeout", "must be under consumer.rebalance_timeout (%s)", c.Consumer.RebalanceTimeout)
	}
	if c.Consumer.HeartbeatInterval*3 > c.Consumer.SessionTimeout {
		add("consumer.heartbeat_interval", "must be at most a third of consumer.session_timeout (%s)", c.Consumer.SessionTimeout)
	}
	if _, ok := acksByName[c.Publisher.Acks]; !ok {
		add("publisher.acks", "%q: want all, leader or none", c.Publisher.Acks)
	}
	if _, ok := compressionByName[c.Publisher.Compression]; !ok {
		add("publisher.compression", "%q: want none, gzip, snappy, lz4 or zstd", c.Publisher.Compression)
	}
	if c.Publisher.Retries < 0 {
		add("publisher.retries", "must not be negative")
	}
	if c.Publisher.MaxMessageBytes <= 0 {
		add("publisher.max_message_bytes", "must be positive")
	}
	if c.Topics.Create {
		if c.Topics.Partitions < 1 {
			add("topics.partitions", "must be at least 1")
		}
		if c.Topics.ReplicationFactor < 1 {
			add("topics.replication_factor", "must be at least 1")
		}
		if c.Topics.Retention < 0 || (c.Topics.Retention > 0 && c.Topics.Retention < time.Millisecond) {
			add("topics.retention", "%s: must be at least 1ms, or 0 for the broker's default (log.retention.hours)", c.Topics.Retention)
		}
		if c.Topics.RetentionBytes < 0 {
			add("topics.retention_bytes", "must not be negative (0 uses the broker's default, log.retention.bytes)")
		}
	}
	switch c.SASL.Mechanism {
	case "":
	case sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		if c.SASL.Username == "" {
			add("sasl.username", "is required with sasl.mechanism %s", c.SASL.Mechanism)
		}
		if c.SASL.Password == "" {
			add("sasl.password", "is required with sasl.mechanism %s (give it as ${VAR})", c.SASL.Mechanism)
		}
	default:
		add("sasl.mechanism", "%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
	}
	errs = append(errs, config.Nest("tls", c.TLS.Validate()))
	return errors.Join(errs...)
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

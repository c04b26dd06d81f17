package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Name is the backend's name in the config file.
const Name = "kafka"

func init() { driver.Register[Config](Name, backendDriver{}) }

type backendDriver struct{}

func (backendDriver) DefaultConfig() *Config { return DefaultConfig() }

// EmbeddedBroker is an in-process broker started for `embedded: true`.
type EmbeddedBroker interface {
	Addrs() []string
	Close() error
}

// EmbeddedStarter starts an embedded broker that keeps its data in dataDir ("" for memory).
type EmbeddedStarter func(dataDir string, partitions int32, logger *slog.Logger) (EmbeddedBroker, error)

var (
	embeddedMu    sync.Mutex
	startEmbedded EmbeddedStarter
)

// RegisterEmbedded installs the embedded broker. Package backends/kafka/embedded calls it from
// init, so only programs that import that package link the broker.
func RegisterEmbedded(start EmbeddedStarter) {
	embeddedMu.Lock()
	defer embeddedMu.Unlock()
	startEmbedded = start
}

func (backendDriver) Open(ctx context.Context, c *Config, o driver.Options) (*driver.Conn, error) {
	cfg := *c
	if o.ConsumerGroup != "" {
		cfg.ConsumerGroup = o.ConsumerGroup
	}
	if o.StartFrom != driver.StartDefault {
		cfg.Consumer.StartFrom = string(o.StartFrom)
	}
	if o.MaxInFlight > 0 {
		cfg.Consumer.MaxInFlight = o.MaxInFlight
		if cfg.ConsumerGroup == "" {
			return nil, errors.New("kafka: a pipelining subscriber (max in flight) needs a consumer group")
		}
	}
	logger := o.Logger.With("backend", Name)
	if cfg.SASL.Mechanism == sarama.SASLTypePlaintext && !cfg.TLS.Enabled {
		logger.Warn("SASL PLAIN without TLS: the password crosses the network in clear; set kafka.tls.enabled or use SCRAM", "user", cfg.SASL.Username)
	}

	var closers []func() error
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}

	if cfg.Embedded {
		embeddedMu.Lock()
		start := startEmbedded
		embeddedMu.Unlock()
		if start == nil {
			return nil, errors.New(`kafka.embedded is true but the embedded broker is not linked into this program: import _ "github.com/eventbus-go/eventbus/backends/kafka/embedded"`)
		}
		eb, err := start(cfg.EmbeddedDataDir, cfg.Topics.Partitions, logger)
		if err != nil {
			return nil, fmt.Errorf("start embedded broker: %w", err)
		}
		closers = append(closers, eb.Close)
		cfg.Brokers = eb.Addrs()
		logger.Info("embedded Kafka broker started", "addrs", cfg.Brokers, "data_dir", cfg.EmbeddedDataDir)
	}

	sc, err := cfg.saramaConfig()
	if err != nil {
		return nil, errors.Join(err, closeAll())
	}
	start, err := newGroupStart(&cfg, sc, o, logger)
	if err != nil {
		return nil, errors.Join(err, closeAll())
	}
	var creator *topicCreator
	if cfg.Topics.Create {
		creator = &topicCreator{
			brokers: cfg.Brokers,
			sc:      sc,
			detail: sarama.TopicDetail{NumPartitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor,
				ConfigEntries: cfg.Topics.configEntries()},
		}
		closers = append(closers, creator.close)
	}

	wlog := driver.WatermillLogger(logger)
	pub, err := newSyncPublisher(cfg.Brokers, sc)
	if err != nil {
		err = classify(fmt.Sprintf("connect to Kafka brokers %v", cfg.Brokers), err)
		if errors.Is(err, driver.ErrUnavailable) {
			err = fmt.Errorf("%w (%s)", err, devBrokerHint)
		}
		return nil, errors.Join(err, closeAll())
	}
	var sub message.Subscriber
	// The pipelined subscriber with a window of 1 hands records out one at a time, as
	// Watermill's does, but drains on close: it is the default whenever there is a group.
	pipelined := cfg.Consumer.MaxInFlight > 0 && cfg.ConsumerGroup != ""
	parallel := pipelined && cfg.Consumer.MaxInFlight > 1
	if pipelined {
		sub = newPipelineSubscriber(&cfg, sc, logger)
	} else {
		sub, err = wkafka.NewSubscriber(wkafka.SubscriberConfig{
			Brokers:               cfg.Brokers,
			Unmarshaler:           marshaler{},
			OverwriteSaramaConfig: sc,
			ConsumerGroup:         cfg.ConsumerGroup,
			NackResendSleep:       cfg.Consumer.NackDelay,
			ReconnectRetrySleep:   cfg.Consumer.ReconnectDelay,
		}, wlog)
		if err != nil {
			return nil, errors.Join(classify("create subscriber", err), pub.Close(), closeAll())
		}
	}

	persistent := !cfg.Embedded || cfg.EmbeddedDataDir != ""
	caps := driver.Capabilities{
		ConsumerGroups:  true,
		PerKeyOrdering:  !parallel,
		Persistence:     persistent,
		Replay:          true,
		ReplayByTime:    true,
		Pipelining:      parallel,
		MaxMessageBytes: cfg.Publisher.MaxMessageBytes,
		Notes: map[driver.Capability]string{
			driver.PerKeyOrdering: "records of one key go to one partition; order holds per partition",
			driver.Pipelining:     "set kafka.consumer.max_in_flight above 1",
			driver.Replay:         "from the oldest offset the topic retains (retention.ms bounds it)",
			driver.ReplayByTime:   "a new consumer group starts at a time (bus.WithStartAt) or at partition:offset (bus.WithStartPosition), through offsets for times",
		},
	}
	if parallel {
		caps.Notes[driver.Pipelining] = fmt.Sprintf("up to %d records per partition beyond the committed offset", cfg.Consumer.MaxInFlight)
		caps.Notes[driver.PerKeyOrdering] = "the pipelined subscriber hands a key's records out in offset order but does not wait for acks, so a nacked record comes back after later ones; the ordering middleware (router.ordering) restores per-key order on top of it"
	}
	if !persistent {
		caps.Notes[driver.Persistence] = "the embedded broker keeps data in memory; set embedded_data_dir"
	}
	wsub := &subscriber{next: sub, creator: creator, start: start, group: cfg.ConsumerGroup, watermill: !pipelined, closing: make(chan struct{})}
	if o.TemporaryGroup && cfg.ConsumerGroup != "" {
		wsub.removeGroup = groupRemover(cfg.Brokers, sc, cfg.ConsumerGroup, logger)
	}
	wpub := &publisher{next: pub, creator: creator, maxBytes: cfg.Publisher.MaxMessageBytes, recordVersion: recordVersion(sc)}
	admin := newAdmin(cfg.Brokers, sc, logger)
	admin.PoisonQueue = poisonQueueOpener(cfg.Brokers, sc, wpub)
	if cfg.ConsumerGroup != "" {
		newest := cfg.Consumer.StartFrom == "newest" && o.StartAt.IsZero() && o.StartPosition == ""
		admin.BacklogEnd, admin.BacklogEndAfterSubscribe = backlogEnd(cfg.Brokers, sc, cfg.ConsumerGroup, newest), true
	}
	return &driver.Conn{
		Publisher:    wpub,
		Subscriber:   wsub,
		Capabilities: caps,
		Close:        closeAll,
		Lag:          newLag(cfg.Brokers, sc, cfg.ConsumerGroup, &closers),
		Admin:        admin,
		As: func(target any) bool {
			switch t := target.(type) {
			case **sarama.Config:
				*t = sc
				return true
			case *[]string:
				*t = append([]string(nil), cfg.Brokers...)
				return true
			}
			return false
		},
	}, nil
}

// recordVersion is the record format Sarama sizes records by: 2 (record batches) from Kafka
// 0.11 on, 1 before.
func recordVersion(sc *sarama.Config) int {
	if sc.Version.IsAtLeast(sarama.V0_11_0_0) {
		return 2
	}
	return 1
}

// Package embedded runs a Kafka-protocol broker inside the process, for demos, development and
// tests: `eventbus dev`, `eventbus demo`, and any config with kafka.embedded: true. Importing it
// registers the broker with the Kafka driver; a service that never imports it does not link it.
//
// The broker is github.com/twmb/franz-go/pkg/kfake: it speaks the real Kafka wire protocol
// (Sarama and every other client connect to it over TCP), with consumer groups and offsets,
// but it is a single process, not a cluster, and is not meant for production data.
package embedded

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventbus-go/eventbus/backends/kafka"
)

func init() {
	kafka.RegisterEmbedded(func(dataDir string, partitions int32, logger *slog.Logger) (kafka.EmbeddedBroker, error) {
		return Start(Options{DataDir: dataDir, Partitions: partitions, Logger: logger})
	})
}

// Options configure an embedded broker.
type Options struct {
	// Port to listen on at 127.0.0.1. Default: 0, a free port.
	Port int
	// DataDir keeps topics, records and committed offsets across restarts: a broker started
	// again on the same directory serves everything written before. Default: "" (memory only).
	DataDir string
	// Partitions of auto-created topics. Default: 1.
	Partitions int32
	// Logger receives the broker's warnings and errors. Default: none.
	Logger *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
}

// Start starts a broker listening on 127.0.0.1 only.
func Start(o Options) (*Broker, error) {
	if o.Partitions < 1 {
		o.Partitions = 1
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(o.Partitions)),
		// Let short test sessions join groups; real brokers default to 6s.
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}
	if o.Port != 0 {
		opts = append(opts, kfake.Ports(o.Port))
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	if o.Logger != nil {
		opts = append(opts, kfake.WithLogger(slogLogger{o.Logger}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on 127.0.0.1:%d: %w", o.Port, err)
	}
	return &Broker{cluster: c}, nil
}

// Addrs are the host:port addresses clients bootstrap from.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker; with a DataDir it first writes its state there.
func (b *Broker) Close() error {
	b.cluster.Close()
	return nil
}

// slogLogger passes kfake's warnings and errors to slog; its info and debug lines are per-request
// noise.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		s.l.Error("embedded kafka: " + fmt.Sprintf(msg, args...))
	case kfake.LogLevelWarn:
		s.l.Warn("embedded kafka: " + fmt.Sprintf(msg, args...))
	}
}

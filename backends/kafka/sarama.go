package kafka

import (
	"fmt"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// saramaConfig translates c into Sarama's configuration, shared by the producer, the consumer
// group and the admin client.
func (c *Config) saramaConfig() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	v, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	sc.Version = v
	sc.ClientID = c.ClientID

	sc.Net.DialTimeout = c.DialTimeout
	sc.Net.ReadTimeout = c.ReadTimeout
	sc.Net.WriteTimeout = c.WriteTimeout
	sc.Admin.Timeout = c.ReadTimeout
	if tc, err := c.TLS.Build(); err != nil {
		return nil, err
	} else if tc != nil {
		sc.Net.TLS.Enable, sc.Net.TLS.Config = true, tc
	}
	if c.SASL.Mechanism != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		// SaslAuthenticate requests (handshake v1, Kafka 1.0+) rather than raw SASL frames: what
		// brokers expect today, and the only form some (kfake among them) accept.
		sc.Net.SASL.Version = sarama.SASLHandshakeV1
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASL.Mechanism)
		sc.Net.SASL.User = c.SASL.Username
		sc.Net.SASL.Password = c.SASL.Password.Value()
		switch c.SASL.Mechanism {
		case sarama.SASLTypeSCRAMSHA256:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
		case sarama.SASLTypeSCRAMSHA512:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
		}
	}

	sc.Producer.RequiredAcks = acksByName[c.Publisher.Acks]
	sc.Producer.Timeout = c.Publisher.Timeout
	sc.Producer.Retry.Max = c.Publisher.Retries
	sc.Producer.Retry.Backoff = c.Publisher.RetryBackoff
	sc.Producer.MaxMessageBytes = c.Publisher.MaxMessageBytes
	sc.Producer.Compression = compressionByName[c.Publisher.Compression]
	sc.Producer.Return.Successes = true // the sync producer needs both
	sc.Producer.Return.Errors = true
	// Keep records of one key in order across retries: one request in flight per broker.
	sc.Net.MaxOpenRequests = 1

	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	if c.Consumer.StartFrom == "newest" {
		sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	sc.Consumer.Group.Session.Timeout = c.Consumer.SessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = c.Consumer.HeartbeatInterval
	sc.Consumer.Group.Rebalance.Timeout = c.Consumer.RebalanceTimeout
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = c.Consumer.CommitInterval

	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("sarama rejected the configuration: %w", err)
	}
	return sc, nil
}

// scramClient adapts xdg-go/scram, the implementation Sarama's own examples use, to Sarama.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	c, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *scramClient) Done() bool                            { return s.conv.Done() }

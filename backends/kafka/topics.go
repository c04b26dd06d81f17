package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// topicCreator creates missing topics through the admin API, once per topic and process.
type topicCreator struct {
	brokers []string
	sc      *sarama.Config
	detail  sarama.TopicDetail

	mu      sync.Mutex
	admin   sarama.ClusterAdmin
	created map[string]bool
}

func (t *topicCreator) ensure(topic string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.created[topic] {
		return nil
	}
	if t.admin == nil {
		admin, err := sarama.NewClusterAdmin(t.brokers, t.sc)
		if err != nil {
			return classify(fmt.Sprintf("create topic %s: connect admin client to %v", topic, t.brokers), err)
		}
		t.admin = admin
	}
	detail := t.detail
	err := t.admin.CreateTopic(topic, &detail, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return classify(fmt.Sprintf("create topic %s (%d partitions, replication %d)", topic, detail.NumPartitions, detail.ReplicationFactor), err)
	}
	if t.created == nil {
		t.created = map[string]bool{}
	}
	t.created[topic] = true
	return nil
}

func (t *topicCreator) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.admin == nil {
		return nil
	}
	err := t.admin.Close()
	t.admin = nil
	return err
}

// ErrInvalidTopic is wrapped by Publish's and Subscribe's errors for a name Kafka does not
// accept as a topic.
var ErrInvalidTopic = errors.New("invalid topic")

// checkTopic applies Kafka's rule for topic names (at most 249 characters of [a-zA-Z0-9._-],
// not "." or ".."), which a broker enforces only when it creates the topic, and not every
// broker does (the embedded one accepts any name).
func checkTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("topic is empty: %w", ErrInvalidTopic)
	case topic == "." || topic == "..":
		return fmt.Errorf("topic %q is not allowed: %w", topic, ErrInvalidTopic)
	case len(topic) > 249:
		return fmt.Errorf("topic %.40q... is %d characters, longer than 249: %w", topic, len(topic), ErrInvalidTopic)
	}
	for _, r := range topic {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic %q contains %q: Kafka topic names use only letters, digits, '.', '_' and '-': %w", topic, r, ErrInvalidTopic)
		}
	}
	return nil
}

// publisher wraps Watermill's Kafka publisher: it creates missing topics when configured to,
// and makes Close safe against concurrent Publish calls (the adapter's closed flag is not).
type publisher struct {
	mu      sync.RWMutex
	closed  bool
	next    message.Publisher
	creator *topicCreator // nil when topics.create is false
	// maxBytes is publisher.max_message_bytes; recordVersion is the record format Sarama sizes
	// records by (2 from Kafka 0.11 on), so that a record refused here is exactly one Sarama
	// would refuse.
	maxBytes      int
	recordVersion int
}

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errPublisherClosed
	}
	for _, msg := range msgs {
		if err := p.checkSize(topic, msg); err != nil {
			return err
		}
	}
	if err := checkTopic(topic); err != nil {
		return err
	}
	if p.creator != nil {
		if err := p.creator.ensure(topic); err != nil {
			return err
		}
	}
	err := p.next.Publish(topic, msgs...)
	if errors.Is(err, sarama.ErrMessageSizeTooLarge) {
		return fmt.Errorf("publish to %s: the broker refused a record as too large: its message.max.bytes (or the topic's max.message.bytes) is below %s (%d): %w (%w)",
			topic, maxBytesKey, p.maxBytes, driver.ErrTooLarge, err)
	}
	return classify("", err)
}

// recordBytes is the size of msg's record as Sarama measures it against MaxMessageBytes.
func recordBytes(topic string, msg *message.Message, version int) (int, error) {
	rec, err := marshaler{}.Marshal(topic, msg)
	if err != nil {
		return 0, err
	}
	return rec.ByteSize(version), nil
}

const maxBytesKey = "kafka.publisher.max_message_bytes"

// recordBytesBound is at least recordBytes, for either record version, and costs no
// allocation: the payload, every metadata key and value and the UUID header, each header with
// room for two length varints, plus more than a record's fixed overhead (Sarama counts 36
// bytes for a version 2 record and its varints, 26 for version 1; the partition key leaves the
// headers for the record key, which is shorter).
func recordBytesBound(msg *message.Message) int {
	n := 64 + len(msg.Payload) + len(wkafka.UUIDHeaderKey) + len(msg.UUID) + 2*binary.MaxVarintLen32
	for k, v := range msg.Metadata {
		n += len(k) + len(v) + 2*binary.MaxVarintLen32
	}
	return n
}

// checkSize refuses a message whose record would exceed maxBytes, before anything is sent:
// Sarama's own check fails with a bare configuration error that names no message. A message
// well under the limit is passed without building its record (the producer builds it again).
func (p *publisher) checkSize(topic string, msg *message.Message) error {
	if recordBytesBound(msg) <= p.maxBytes {
		return nil
	}
	size, err := recordBytes(topic, msg, p.recordVersion)
	if err != nil {
		return nil // not sizeable: the Watermill publisher reports why, naming the message
	}
	if size > p.maxBytes {
		return fmt.Errorf("publish message %s to %s: the record is %d bytes, over the limit of %d (%s): %w",
			msg.UUID, topic, size, p.maxBytes, maxBytesKey, driver.ErrTooLarge)
	}
	return nil
}

func (p *publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.next.Close()
}

// subscriber wraps the Kafka subscriber (Watermill's or the pipelined one) to create missing
// topics before subscribing, and records each message's bus.Position on Watermill's.
type subscriber struct {
	next    message.Subscriber
	creator *topicCreator
	start   *groupStart // nil unless the caller asked for a start time or position
	// group is the consumer group, for positions; watermill is true when next is Watermill's
	// subscriber, whose messages need their position recorded.
	group     string
	watermill bool
	// removeGroup, when not nil, deletes the consumer group on Close: the group is temporary
	// (driver.Options.TemporaryGroup). subscribed says whether there is a group to delete.
	removeGroup func()
	subscribed  atomic.Bool

	closeOnce  sync.Once
	closeErr   error
	closing    chan struct{}  // closed by Close, so position forwarders blocked on a reader end
	forwarders sync.WaitGroup // Close returns only once every forwarder has closed its channel
}

func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("subscribe to %s: %w", topic, errSubscriberClosed)
	}
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	if s.creator != nil {
		if err := s.creator.ensure(topic); err != nil {
			return nil, err
		}
	}
	if s.start != nil {
		if err := s.start.apply(topic); err != nil {
			return nil, err
		}
	}
	msgs, err := s.next.Subscribe(ctx, topic)
	if err != nil && s.isClosed() {
		// Closed while subscribing: the adapter's own error for it is a bare string.
		return nil, fmt.Errorf("subscribe to %s: %w (%w)", topic, errSubscriberClosed, err)
	}
	if err != nil {
		return nil, classify(fmt.Sprintf("subscribe to %s", topic), err)
	}
	s.subscribed.Store(true)
	if !s.watermill {
		return msgs, nil
	}
	s.forwarders.Add(1)
	return withPositions(ctx, s.closing, msgs, topic, s.group, s.forwarders.Done), nil
}

func (s *subscriber) isClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// SubscribeInitialize creates the topic (Watermill's message.SubscribeInitializer).
func (s *subscriber) SubscribeInitialize(topic string) error {
	if s.creator == nil {
		return nil
	}
	return s.creator.ensure(topic)
}

// Close closes the underlying subscriber once (Watermill's Kafka subscriber's closed flag is
// not safe for concurrent Close calls, and the router and Bus.Close both close it); when it
// returns, every subscription's channel is closed, as Watermill's subscriber contract asks,
// and a temporary consumer group is deleted.
func (s *subscriber) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.closeErr = s.next.Close()
		s.forwarders.Wait()
		if s.removeGroup != nil && s.subscribed.Load() {
			s.removeGroup()
		}
	})
	return s.closeErr
}

// groupRemover returns a function that deletes consumer group group through the admin API,
// once its members (this process's, which have just left) are gone. A failure is logged: the
// group then stays behind, with its offsets, as it would without this clean-up.
func groupRemover(brokers []string, sc *sarama.Config, group string, logger *slog.Logger) func() {
	return func() {
		admin, err := sarama.NewClusterAdmin(brokers, sc)
		if err != nil {
			logger.Warn("kafka: cannot remove the temporary consumer group", "group", group, "err", err)
			return
		}
		defer admin.Close()
		// Members leave the group as they close; the coordinator may take a moment to see the
		// group empty.
		deadline := time.Now().Add(5 * time.Second)
		for {
			err = admin.DeleteConsumerGroup(group)
			if err == nil || errors.Is(err, sarama.ErrGroupIDNotFound) {
				return
			}
			if !errors.Is(err, sarama.ErrNonEmptyGroup) || time.Now().After(deadline) {
				logger.Warn("kafka: cannot remove the temporary consumer group", "group", group, "err", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
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
			return fmt.Errorf("create topic %s: connect admin client: %w", topic, err)
		}
		t.admin = admin
	}
	detail := t.detail
	err := t.admin.CreateTopic(topic, &detail, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("create topic %s (%d partitions, replication %d): %w", topic, detail.NumPartitions, detail.ReplicationFactor, err)
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

// publisher wraps Watermill's Kafka publisher: it creates missing topics when configured to,
// and makes Close safe against concurrent Publish calls (the adapter's closed flag is not).
type publisher struct {
	mu      sync.RWMutex
	closed  bool
	next    message.Publisher
	creator *topicCreator // nil when topics.create is false
}

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errors.New("kafka publisher closed")
	}
	if p.creator != nil {
		if err := p.creator.ensure(topic); err != nil {
			return err
		}
	}
	return p.next.Publish(topic, msgs...)
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
	if s.creator != nil {
		if err := s.creator.ensure(topic); err != nil {
			return nil, err
		}
	}
	msgs, err := s.next.Subscribe(ctx, topic)
	if err == nil {
		s.subscribed.Store(true)
	}
	if err != nil || !s.watermill {
		return msgs, err
	}
	s.forwarders.Add(1)
	return withPositions(ctx, s.closing, msgs, topic, s.group, s.forwarders.Done), nil
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

package driver

import (
	"context"
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrIncomplete is wrapped by a PoisonQueue's errors when the run cannot see the whole queue
// (a RabbitMQ consumer holds some of its messages).
var ErrIncomplete = errors.New("cannot see the whole poison queue")

// DefaultPoisonReaderGroup is the consumer group whose committed offsets mark where a Kafka
// poison queue starts: records before them were removed by earlier runs.
const DefaultPoisonReaderGroup = "eventbus-dlq"

// PoisonQueueFunc opens a reader of one topic's poison queue, for `eventbus dlq`: through the
// broker's own client, so that it takes nothing a consumer would see and declares nothing.
type PoisonQueueFunc func(ctx context.Context, o PoisonQueueOptions) (PoisonQueue, error)

// PoisonQueueOptions say which poison queue to read.
type PoisonQueueOptions struct {
	// Topic is the topic whose poisoned messages are read; PoisonTopic the topic the poison
	// middleware stores them in.
	Topic, PoisonTopic string
	// Group is the consumer group the queue belongs to where the broker needs one: on Kafka
	// the group whose committed offsets mark the start of the queue (default
	// DefaultPoisonReaderGroup), on RabbitMQ the group whose queue of the poison topic holds
	// the messages (default the config's consumer group). Unused on Redis.
	Group string
	// Redrive says the run will send messages back to their topics: where the broker has
	// transactions (RabbitMQ), each redrive commits together with the removal of its record.
	Redrive bool
}

// PoisonQueue reads one topic's poison queue.
type PoisonQueue interface {
	// Describe names the queue for messages: which topic, stream or queue, in which group.
	Describe() string
	// Depth counts the records a run would see now, without waiting, taking or declaring
	// anything: what `eventbus status` shows. It fails wrapping ErrUnknownTopic when neither
	// the topic nor its poison queue exists.
	Depth(ctx context.Context) (int, error)
	// Open fixes the end of the queue the run works on (what is there now) and returns how many
	// records lie before it. It declares and creates nothing, and fails wrapping
	// ErrUnknownTopic when neither the topic nor its poison queue exists, and ErrIncomplete
	// when the run could not see every record.
	Open(ctx context.Context) (int, error)
	// Scan calls visit for each record up to that end, in queue order, and returns visit's
	// error as it is. Unless act, it takes and changes nothing. With act, a record visit
	// decided to remove is removed (after its redrive was sent) before the next record is
	// visited; the others stay. A scan with act must follow one without, with the same
	// decisions: a driver may use the first to bound what the second touches.
	Scan(ctx context.Context, act bool, visit func(PoisonRecord) (PoisonDecision, error)) error
	Close() error
}

// PoisonRecord is one record of a poison queue.
type PoisonRecord struct {
	Msg *message.Message
	// Position names the record in the poison queue, the same on every run: "kafka
	// orders.poison 0:12", "redis orders.poison 1700000000000-0". Where the broker has no such
	// name (a RabbitMQ delivery tag names a delivery, not a message), the queue, the message
	// id and HeaderPoisonLastFailure name it.
	Position string
}

// PoisonDecision is what a scan does with a record after visiting it: keep it (the zero value)
// or remove it, after sending Send to Topic for consumer group Group when Send is not nil (a
// redrive). The scan calls Done, when not nil, once the record is removed.
type PoisonDecision struct {
	Remove       bool
	Send         *message.Message
	Topic, Group string
	Done         func()
}

// Removed calls d.Done, if any: the record left the poison queue.
func (d PoisonDecision) Removed() {
	if d.Done != nil {
		d.Done()
	}
}

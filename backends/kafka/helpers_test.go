package kafka_test

import (
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

func wkafkaPartition(m *message.Message) (int32, bool) {
	return wkafka.MessagePartitionFromCtx(m.Context())
}

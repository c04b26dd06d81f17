package kafka

import (
	"fmt"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// marshaler maps a Watermill message to a Kafka record the way Open edX's producers write them:
// metadata become record headers, the envelope's ordering key becomes the record key (so it
// picks the partition and keeps per-key order), and the payload is the record value untouched.
//
// Watermill's UUID header is written only when the UUID differs from ce_id, so records of the
// bus carry no Watermill-specific header and records from other producers need none: on the
// way back the UUID is the Watermill header, else ce_id, else the record's position.
type marshaler struct{}

var _ wkafka.MarshalerUnmarshaler = marshaler{}

func (marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	if msg.Metadata.Get(wkafka.UUIDHeaderKey) != "" {
		return nil, fmt.Errorf("message %s: metadata key %s is reserved for the message UUID", msg.UUID, wkafka.UUIDHeaderKey)
	}
	headers := make([]sarama.RecordHeader, 0, len(msg.Metadata)+1)
	if msg.UUID != msg.Metadata.Get(driver.HeaderID) {
		headers = append(headers, sarama.RecordHeader{Key: []byte(wkafka.UUIDHeaderKey), Value: []byte(msg.UUID)})
	}
	for k, v := range msg.Metadata {
		if k == driver.HeaderKey {
			continue
		}
		headers = append(headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	rec := &sarama.ProducerMessage{
		Topic:   topic,
		Value:   sarama.ByteEncoder(msg.Payload),
		Headers: headers,
	}
	if key := msg.Metadata.Get(driver.HeaderKey); key != "" {
		rec.Key = sarama.StringEncoder(key)
	}
	return rec, nil
}

func (marshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	md := make(message.Metadata, len(rec.Headers)+1)
	var uuid string
	for _, h := range rec.Headers {
		if h == nil {
			continue
		}
		if string(h.Key) == wkafka.UUIDHeaderKey {
			uuid = string(h.Value)
			continue
		}
		md.Set(string(h.Key), string(h.Value))
	}
	if len(rec.Key) > 0 {
		md.Set(driver.HeaderKey, string(rec.Key))
	}
	if uuid == "" {
		uuid = md.Get(driver.HeaderID)
	}
	if uuid == "" {
		uuid = fmt.Sprintf("kafka:%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
	}
	msg := message.NewMessage(uuid, rec.Value)
	msg.Metadata = md
	return msg, nil
}

// DecodeRecord turns a record read with a bare Sarama consumer into a message as this backend's
// subscribers would deliver it (tools such as `eventbus dlq` read poison topics that way).
func DecodeRecord(rec *sarama.ConsumerMessage) *message.Message { return toMessage(rec) }

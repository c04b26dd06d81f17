package kafka

import "github.com/ThreeDotsLabs/watermill/message"

// RecordBytes is the size publisher.max_message_bytes is checked against (record format 2).
func RecordBytes(topic string, msg *message.Message) int {
	n, err := recordBytes(topic, msg, 2)
	if err != nil {
		panic(err)
	}
	return n
}

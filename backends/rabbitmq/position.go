package rabbitmq

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Coordinates formats a delivery's place as a Position's coordinates: "queue#delivery-tag". A
// delivery tag counts deliveries on one channel, so it names the delivery, not the message: it
// is for people reading a poison record, not for finding the message again.
func Coordinates(queue string, deliveryTag uint64) string {
	return queue + "#" + strconv.FormatUint(deliveryTag, 10)
}

// StreamCoordinates formats a stream queue's message place: "queue@offset". Unlike a delivery
// tag, a stream offset finds the message again.
func StreamCoordinates(queue string, offset int64) string {
	return queue + "@" + strconv.FormatInt(offset, 10)
}

// ParseCoordinates reads what Coordinates or StreamCoordinates wrote: the queue, and either a
// stream offset (stream true) or a delivery tag.
func ParseCoordinates(s string) (queue string, n int64, stream bool, err error) {
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		off, perr := strconv.ParseInt(s[i+1:], 10, 64)
		if perr == nil && off >= 0 {
			return s[:i], off, true, nil
		}
	}
	if i := strings.LastIndexByte(s, '#'); i > 0 {
		tag, perr := strconv.ParseInt(s[i+1:], 10, 64)
		if perr == nil && tag >= 0 {
			return s[:i], tag, false, nil
		}
	}
	return "", 0, false, fmt.Errorf("rabbitmq position %q: want queue#delivery-tag or queue@stream-offset: %w", s, driver.ErrInvalidPosition)
}

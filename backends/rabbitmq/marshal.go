package rabbitmq

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// marshal maps a Watermill message to an AMQP publishing: metadata become headers (strings),
// the UUID becomes the message-id property, the payload the body untouched. content-type and
// ce_type are mirrored into the content-type and type properties so that RabbitMQ's own tools
// show them.
func marshal(msg *message.Message, persistent bool) amqp.Publishing {
	headers := make(amqp.Table, len(msg.Metadata))
	for k, v := range msg.Metadata {
		headers[k] = v
	}
	p := amqp.Publishing{
		Headers:     headers,
		Body:        msg.Payload,
		MessageId:   msg.UUID,
		ContentType: msg.Metadata.Get(driver.HeaderContentType),
		Type:        msg.Metadata.Get(driver.HeaderType),
		Timestamp:   time.Now().UTC(),
	}
	if persistent {
		p.DeliveryMode = amqp.Persistent
	}
	return p
}

// unmarshal maps a delivery back. It never fails: whatever cannot be read as text is noted in
// driver.HeaderInvalidReason and the message is delivered anyway, so nothing is dropped.
//
// The UUID is the message-id property, else watermill-amqp's UUID header (messages published
// by the bare adapter), else ce_id, else a new one.
func unmarshal(d amqp.Delivery) *message.Message {
	md := make(message.Metadata, len(d.Headers)+1)
	var problems []string
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s, problem := headerText(d.Headers[k])
		if problem != "" {
			problems = append(problems, fmt.Sprintf("header %q %s", k, problem))
		}
		md[k] = s
	}
	uuid := d.MessageId
	if adapterUUID := md[wamqp.DefaultMessageUUIDHeaderKey]; adapterUUID != "" {
		if uuid == "" {
			uuid = adapterUUID
		}
		delete(md, wamqp.DefaultMessageUUIDHeaderKey)
	}
	if uuid == "" {
		uuid = md.Get(driver.HeaderID)
	}
	if uuid == "" {
		uuid = watermill.NewUUID()
	}
	if d.ContentType != "" && md.Get(driver.HeaderContentType) == "" {
		md.Set(driver.HeaderContentType, d.ContentType)
	}
	if d.Redelivered {
		md.Set(wamqp.MetadataRedeliveredKey, "true")
	}
	if len(problems) > 0 {
		md.Set(driver.HeaderInvalidReason, strings.Join(problems, "; "))
	}
	msg := message.NewMessage(uuid, d.Body)
	msg.Metadata = md
	return msg
}

// headerText renders an AMQP header value as text. Other producers write numbers, booleans,
// timestamps and tables (RabbitMQ's own x-death is an array of tables); those are rendered in
// an obvious form (tables as JSON). Only bytes that are not UTF-8 cannot be shown as they are:
// they are given in base64 and the problem is returned.
func headerText(v any) (string, string) {
	switch x := v.(type) {
	case nil:
		return "", ""
	case string:
		return x, ""
	case []byte:
		if utf8.Valid(x) {
			return string(x), ""
		}
		return base64.StdEncoding.EncodeToString(x), fmt.Sprintf("holds %d bytes that are not UTF-8 text (given here in base64)", len(x))
	case bool:
		return strconv.FormatBool(x), ""
	case int8, int16, int32, int64, int, uint8, uint16, uint32:
		return fmt.Sprint(x), ""
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), ""
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), ""
	case time.Time:
		return x.UTC().Format(time.RFC3339), ""
	case amqp.Decimal:
		return decimalText(x), ""
	case amqp.Table, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x), fmt.Sprintf("holds a %T that cannot be written as JSON: %v", x, err)
		}
		return string(b), ""
	}
	return fmt.Sprint(v), fmt.Sprintf("holds an unexpected %T", v)
}

func decimalText(d amqp.Decimal) string {
	s := strconv.FormatInt(int64(d.Value), 10)
	if d.Scale == 0 {
		return s
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for len(s) <= int(d.Scale) {
		s = "0" + s
	}
	s = s[:len(s)-int(d.Scale)] + "." + s[len(s)-int(d.Scale):]
	if neg {
		s = "-" + s
	}
	return s
}

// Unmarshal turns a delivery (from basic.get, say) into a message as this backend's subscriber
// would deliver it (tools such as `eventbus dlq` read poison queues that way).
func Unmarshal(d amqp.Delivery) *message.Message { return unmarshal(d) }

// Marshal turns a message into the publishing this backend's publisher would send (persistent:
// delivery mode 2), for tools that publish on a channel of their own.
func Marshal(msg *message.Message, persistent bool) amqp.Publishing { return marshal(msg, persistent) }

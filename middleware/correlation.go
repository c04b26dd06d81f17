package middleware

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
)

// HeaderCorrelationID is the metadata key of the correlation id: the one Watermill's
// CorrelationID middleware uses (middleware.CorrelationIDMetadataKey), so both read the same
// header.
const HeaderCorrelationID = "correlation_id"

// CorrelationID makes every message carry a correlation id and hands it on: a message that
// arrives without one gets its own event id (ce_id), the handler finds it in the context
// (CorrelationIDFrom) for its logs and outgoing calls, and the messages the handler returns
// for publishing carry it too. A poisoned message keeps it, so a failure can be traced from
// the first event of a flow to the poison queue and back after a redrive.
func CorrelationID(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		id := msg.Metadata.Get(HeaderCorrelationID)
		if id == "" {
			id = msg.Metadata.Get(bus.HeaderID)
			if id == "" {
				id = msg.UUID
			}
			msg.Metadata.Set(HeaderCorrelationID, id)
		}
		ctx := msg.Context()
		msg.SetContext(context.WithValue(ctx, correlationKey{}, id))
		out, err := h(msg)
		msg.SetContext(ctx)
		for _, m := range out {
			if m.Metadata.Get(HeaderCorrelationID) == "" {
				m.Metadata.Set(HeaderCorrelationID, id)
			}
		}
		return out, err
	}
}

type correlationKey struct{}

// CorrelationIDFrom returns the correlation id the CorrelationID middleware put in a handler's
// message context, or "".
func CorrelationIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

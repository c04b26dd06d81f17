package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Receive returns the next message from a subscription, for a user's own tests as much as
// this module's: it fails the test when the subscription closes first or ctx ends (the
// deadline the test gives itself). It neither acks nor nacks the message.
//
//	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//	defer cancel()
//	msgs, err := b.Subscriber.Subscribe(ctx, topic)
//	...
//	m := bustest.Receive(t, ctx, msgs)
//	m.Ack()
func Receive(t testing.TB, ctx context.Context, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-ctx.Done():
		t.Fatal("no message before the deadline")
		return nil
	}
}

// ExpectNothing fails the test when a message arrives on msgs within the given time: the
// only way to see that something does not happen, so keep it short, and use it after a
// positive check that shows delivery works at all. A subscription that closes meanwhile
// passes: it delivered nothing.
func ExpectNothing(t testing.TB, msgs <-chan *message.Message, within time.Duration) {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			return // a closed subscription delivers nothing
		}
		t.Fatalf("unexpected message %s (%s)", m.UUID, m.Payload)
	case <-time.After(within):
	}
}

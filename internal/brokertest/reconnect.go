package brokertest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ReconnectOptions sizes Reconnect; zero values take Watermill's figures.
type ReconnectOptions struct {
	Messages   int // published in all, default 10,000
	Publishers int // publishing at once, default 100
	// Within bounds the whole test: publishers give up retrying and the reader stops waiting
	// after it, default 4 minutes.
	Within time.Duration
}

// Reconnect is Watermill's universal Reconnect test (100 publishers send 10,000 messages while
// the broker restarts at a third and at half of them) with its bookkeeping made exact, so that
// it runs under -race and cannot report a message it merely counted late: Watermill v1.5.3
// records what was sent in a goroutine it never waits for and compares as soon as the last
// message arrives, so it reports "received 10000, sent 9999, extra [id]" whenever the
// subscriber is quicker than that goroutine.
//
// A publisher retries a failed publish of the same message until it succeeds. The test then
// asserts what an at-least-once bus promises across restarts: every message whose publish
// succeeded is received, and nothing is received that was never published. Copies (a publish
// retried after the broker stored it, a message redelivered after a restart) are allowed and
// logged. restart runs on the test's goroutine while the publishers go on; it may fail the test.
func Reconnect(t *testing.T, pub message.Publisher, sub message.Subscriber, topic string, restart func(), o ReconnectOptions) {
	t.Helper()
	if o.Messages == 0 {
		o.Messages = 10000
	}
	if o.Publishers == 0 {
		o.Publishers = 100
	}
	if o.Within == 0 {
		o.Within = 4 * time.Minute
	}
	deadline := time.Now().Add(o.Within)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	if init, ok := sub.(message.SubscribeInitializer); ok {
		require.NoError(t, init.SubscribeInitialize(topic))
	}
	messages, err := sub.Subscribe(ctx, topic)
	require.NoError(t, err)

	var (
		mu        sync.Mutex
		attempted = map[string]bool{} // published at least once, successfully or not
		acked     = map[string]bool{} // a publish of it succeeded
		received  = map[string]int{}  // deliveries per id
		failures  int                 // failed publish calls, each retried
	)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for msg := range messages {
			mu.Lock()
			received[msg.UUID]++
			mu.Unlock()
			msg.Ack()
		}
	}()

	work := make(chan string)
	restartAt := make(chan int, 2)
	go func() {
		defer close(work)
		for i := 0; i < o.Messages; i++ {
			select {
			case work <- watermill.NewUUID():
			case <-ctx.Done():
				return
			}
			if i == o.Messages/3 || i == o.Messages/2 {
				restartAt <- i
			}
		}
	}()
	var publishers sync.WaitGroup
	for range o.Publishers {
		publishers.Add(1)
		go func() {
			defer publishers.Done()
			for id := range work {
				msg := message.NewMessage(id, []byte("x"))
				mu.Lock()
				attempted[id] = true
				mu.Unlock()
				for pub.Publish(topic, msg) != nil {
					mu.Lock()
					failures++
					mu.Unlock()
					select {
					case <-time.After(100 * time.Millisecond):
					case <-ctx.Done():
						return
					}
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}()
	}
	published := make(chan struct{})
	go func() { publishers.Wait(); close(published) }()

	for restarts := 0; restarts < 2; restarts++ {
		select {
		case i := <-restartAt:
			t.Logf("restarting the broker after %d messages handed to publishers", i)
			restart()
			t.Logf("broker restarted")
		case <-published:
			restarts = 2
		}
	}
	select {
	case <-published:
	case <-ctx.Done():
		t.Fatalf("publishers did not finish within %s", o.Within)
	}

	missing := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(lostIDs(acked, received))
	}
	// Every acknowledged message arrives: a poll with a deadline, since the last ones may still
	// be on their way from the broker.
	for missing() > 0 && ctx.Err() == nil && !isClosed(readerDone) {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-readerDone:
		}
	}
	cancel()
	<-readerDone

	mu.Lock()
	defer mu.Unlock()
	var ghosts []string
	copies := 0
	for id, n := range received {
		if !attempted[id] {
			ghosts = append(ghosts, id)
		}
		copies += n - 1
	}
	t.Logf("published %d messages (%d acknowledged, %d failed publish calls retried), received %d distinct, %d copies",
		len(attempted), len(acked), failures, len(received), copies)
	assert.Len(t, acked, o.Messages, "every message is published in the end")
	lost := lostIDs(acked, received)
	if len(lost) > 10 {
		lost = append(lost[:10], fmt.Sprintf("... and %d more", len(lost)-10))
	}
	assert.Empty(t, lost, "acknowledged messages never received")
	assert.Empty(t, ghosts, "received messages that were never published")
}

// lostIDs are the acknowledged ids not received, sorted.
func lostIDs(acked map[string]bool, received map[string]int) []string {
	var ids []string
	for id := range acked {
		if received[id] == 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

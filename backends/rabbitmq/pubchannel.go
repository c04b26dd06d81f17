package rabbitmq

import (
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// pubChannel is one slot of the publishing pool; open is its current channel, nil until first
// use and replaced when it closes or the connection changes.
type pubChannel struct {
	mu   sync.Mutex
	open *openChannel
}

// openChannel is a publishing channel in confirm mode that concurrent Publish calls share. Its
// returns (messages the broker could not route) are collected by a goroutine of its own, keyed
// by routing key and message id, for the Publish call that waits for that message's confirm.
//
// The broker sends a message's basic.return before its basic.ack, and amqp091 hands both over
// from its one reader goroutine in that order: the return is received by the collector before
// the confirm is delivered. A waiter that saw the confirm therefore syncs with the collector
// (a round trip through its request channel) before looking the return up: the collector has
// stored every return it received before it answers.
type openChannel struct {
	ch  *amqp.Channel
	gen uint64

	syncs     chan chan struct{}
	collected chan struct{} // closed when the collector ends (the channel closed)

	mu       sync.Mutex
	returned map[returnKey][]returned
}

type returnKey struct{ routingKey, messageID string }

type returned struct {
	r  amqp.Return
	at time.Time
}

// returnTTL bounds how long a return nobody claimed (its Publish gave up waiting) is kept.
const returnTTL = time.Minute

func newOpenChannel(ch *amqp.Channel, gen uint64, mandatory bool) *openChannel {
	oc := &openChannel{ch: ch, gen: gen, syncs: make(chan chan struct{}), collected: make(chan struct{}),
		returned: map[returnKey][]returned{}}
	if !mandatory {
		close(oc.collected)
		return oc
	}
	// Unbuffered: amqp091's send completes only once the collector has the return.
	returns := ch.NotifyReturn(make(chan amqp.Return))
	go oc.collect(returns)
	return oc
}

// collect stores returns and answers syncs until amqp091 closes returns with the channel.
func (oc *openChannel) collect(returns <-chan amqp.Return) {
	defer close(oc.collected)
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				return
			}
			oc.store(r)
		case done := <-oc.syncs:
			close(done)
		}
	}
}

func (oc *openChannel) store(r amqp.Return) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	now := time.Now()
	for k, rs := range oc.returned {
		if now.Sub(rs[0].at) > returnTTL {
			delete(oc.returned, k)
		}
	}
	k := returnKey{r.RoutingKey, r.MessageId}
	oc.returned[k] = append(oc.returned[k], returned{r: r, at: now})
}

// takeReturn reports whether the broker returned the message, after its confirm arrived.
func (oc *openChannel) takeReturn(routingKey, messageID string) (amqp.Return, bool) {
	done := make(chan struct{})
	select {
	case oc.syncs <- done:
		<-done
	case <-oc.collected:
	}
	oc.mu.Lock()
	defer oc.mu.Unlock()
	k := returnKey{routingKey, messageID}
	rs := oc.returned[k]
	if len(rs) == 0 {
		return amqp.Return{}, false
	}
	if len(rs) == 1 {
		delete(oc.returned, k)
	} else {
		oc.returned[k] = rs[1:]
	}
	return rs[0].r, true
}

// close closes the channel; the collector ends when amqp091 closes the returns.
func (oc *openChannel) close() {
	if !oc.ch.IsClosed() {
		_ = oc.ch.Close()
	}
	<-oc.collected
}

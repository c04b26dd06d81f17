package bustest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
)

// checkDelivery: every event arrives once acked, with its envelope, key, metadata, data and
// broker position, and raw bytes untouched.
func checkDelivery(t T, s *env) {
	b := s.open(t, "delivery")
	topic := s.topic(t)
	msgs := s.subscribe(t, b, topic)

	when := time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC)
	want := map[string]bus.Event{}
	for i := range 10 {
		ev := bus.Event{
			ID: fmt.Sprintf("evt-%d", i), Type: "org.openedx.learning.course.enrollment.created.v1",
			Source: "openedx/lms/web", Subject: fmt.Sprintf("user/%d", i), Time: when, Key: fmt.Sprintf("user-%d", i%3),
			Data: map[string]int{"n": i}, Metadata: map[string]string{"traceparent": fmt.Sprintf("00-%032d-01", i)},
		}
		want[ev.ID] = ev
		s.publish(t, b, topic, ev)
	}
	raw := []byte{0x00, 0xff, 0x10, '\n'}
	s.publish(t, b, topic, bus.Event{ID: "raw", Type: "raw.v1", Source: "s", Data: raw, ContentType: "application/octet-stream"})

	rawSeen := false
	for len(want) > 0 || !rawSeen {
		m := s.receive(t, msgs, fmt.Sprintf("the %d events not yet received", len(want)+1))
		ev, err := bus.ParseEvent(m)
		if err != nil {
			t.Fatalf("a published event does not parse back: %v", err)
		}
		if _, ok := bus.PositionOf(m); !ok {
			t.Errorf("event %s: the subscriber recorded no broker position", ev.ID)
		}
		m.Ack()
		if ev.ID == "raw" {
			if string(m.Payload) != string(raw) {
				t.Errorf("raw bytes changed: got %x, want %x", []byte(m.Payload), raw)
			}
			if ev.ContentType != "application/octet-stream" {
				t.Errorf("raw event content-type %q, want application/octet-stream", ev.ContentType)
			}
			rawSeen = true
			continue
		}
		exp, ok := want[ev.ID]
		if !ok {
			continue // a redelivery of one already checked: at-least-once allows it
		}
		delete(want, ev.ID)
		var data map[string]int
		if err := ev.DecodeData(nil, &data); err != nil {
			t.Errorf("event %s: %v", ev.ID, err)
		}
		got := [...]any{m.UUID, ev.Type, ev.Source, ev.Subject, ev.SpecVersion, ev.ContentType, ev.Key, ev.Metadata["traceparent"], data["n"], ev.Time.Equal(when)}
		exp2 := [...]any{exp.ID, exp.Type, exp.Source, exp.Subject, bus.SpecVersion, "application/json", exp.Key, exp.Metadata["traceparent"], exp.Data.(map[string]int)["n"], true}
		if got != exp2 {
			t.Errorf("event %s arrived as (id, type, source, subject, specversion, content-type, key, traceparent, n, time equal) %v, want %v", ev.ID, got, exp2)
		}
	}
}

// checkNackRedelivers: a nacked message comes back; nothing is lost to a failed handler.
func checkNackRedelivers(t T, s *env) {
	b := s.open(t, "nack")
	topic := s.topic(t)
	msgs := s.subscribe(t, b, topic)
	s.publish(t, b, topic, event("again"))

	first := s.receive(t, msgs, "the event")
	if first.UUID != "again" {
		t.Fatalf("received %s, want again", first.UUID)
	}
	first.Nack()
	second := s.receive(t, msgs, "the nacked event again")
	if second.UUID != "again" {
		t.Errorf("after the nack received %s, want again", second.UUID)
	}
	second.Ack()
}

// checkConsumerGroups: two instances of one group share the work, each getting a part and no
// event going to both once the group has settled; every group gets every event.
//
// The group settles first: events are published until each instance has received one, since
// a broker may hand everything to the first instance until the second has joined (a Kafka
// rebalance). Only the events published after that are held to "exactly one instance". On
// Kafka the topic needs at least two partitions (kafka.topics.partitions).
func checkConsumerGroups(t T, s *env) {
	g := group("shared")
	a1, a2, other := s.openGroup(t, g), s.openGroup(t, g), s.open(t, "other")
	topic := s.topic(t)
	in := []<-chan *message.Message{s.subscribe(t, a1, topic), s.subscribe(t, a2, topic)}
	inB := s.subscribe(t, other, topic)

	// Settle: keep publishing until both instances have received something.
	got := [2]int{}
	settled := 0
	// A Kafka rebalance takes a few session timeouts; a backend that never splits fails here.
	settle := time.After(20 * time.Second)
	for round := 0; got[0] == 0 || got[1] == 0; round++ {
		ev := event(fmt.Sprintf("warm-%d", round))
		ev.Key = fmt.Sprintf("k%d", round)
		s.publish(t, a1, topic, ev)
		settled++
		deadline := time.After(100 * time.Millisecond)
	drain:
		for {
			select {
			case m := <-in[0]:
				got[0]++
				m.Ack()
			case m := <-in[1]:
				got[1]++
				m.Ack()
			case m := <-inB:
				m.Ack()
			case <-deadline:
				break drain
			case <-settle:
				t.Fatalf("within 20s the two instances of group %s did not both receive an event: %d and %d of %d (a backend declaring consumer-groups must split a group's events between its instances)", g, got[0], got[1], settled)
			case <-s.ctx.Done():
				t.Fatalf("the two instances of group %s never both received an event: %d and %d of %d (a backend declaring consumer-groups must split a group's events between its instances)", g, got[0], got[1], settled)
			}
		}
	}

	const n = 40
	for i := range n {
		ev := event(fmt.Sprintf("g-%d", i))
		ev.Key = fmt.Sprintf("k%d", i)
		s.publish(t, a1, topic, ev)
	}
	byInstance := [2]map[string]bool{{}, {}}
	seenB := map[string]bool{}
	isNew := func(id string) bool { return len(id) > 2 && id[:2] == "g-" }
	for len(byInstance[0])+len(byInstance[1]) < n || len(seenB) < n {
		var m *message.Message
		who := -1
		select {
		case m = <-in[0]:
			who = 0
		case m = <-in[1]:
			who = 1
		case m = <-inB:
		case <-s.ctx.Done():
			t.Fatalf("group %s got %d+%d of %d events, the other group %d", g, len(byInstance[0]), len(byInstance[1]), n, len(seenB))
		}
		m.Ack()
		if !isNew(m.UUID) {
			continue
		}
		if who < 0 {
			seenB[m.UUID] = true
			continue
		}
		if byInstance[1-who][m.UUID] {
			t.Errorf("event %s went to both instances of group %s after the group settled", m.UUID, g)
		}
		byInstance[who][m.UUID] = true
	}
	if len(byInstance[0]) == 0 || len(byInstance[1]) == 0 {
		t.Errorf("one instance did all the work: %d and %d of %d events", len(byInstance[0]), len(byInstance[1]), n)
	}
	t.Logf("group %s split %d events %d/%d", g, n, len(byInstance[0]), len(byInstance[1]))
}

// checkPerKeyOrdering: with one subscriber, events of one key arrive in publish order, also
// across a nack.
func checkPerKeyOrdering(t T, s *env) {
	b := s.open(t, "order")
	topic := s.topic(t)
	msgs := s.subscribe(t, b, topic)
	const keys, perKey = 5, 20
	for i := range perKey {
		for k := range keys {
			ev := event(fmt.Sprintf("k%d-%d", k, i))
			ev.Key, ev.Data = fmt.Sprintf("k%d", k), i
			s.publish(t, b, topic, ev)
		}
	}
	next := map[string]int{}
	nacked := false
	for handled := 0; handled < keys*perKey; {
		m := s.receive(t, msgs, "the next event")
		key := m.Metadata.Get(bus.HeaderKey)
		seq := seqOf(t, m)
		if seq < next[key] {
			m.Ack() // a redelivery of one already handled
			continue
		}
		if seq != next[key] {
			t.Fatalf("key %s: event %s arrived out of order, expected sequence %d", key, m.UUID, next[key])
		}
		if !nacked && seq == perKey/2 {
			nacked = true
			m.Nack() // it must come back before the key's later events
			continue
		}
		next[key]++
		handled++
		m.Ack()
	}
}

// checkPersistence: an event acknowledged by the broker is there after a restart.
func checkPersistence(t T, s *env) {
	if s.h.Restart == nil {
		t.Skipf("declared, not checked: needs control of the broker (the harness has no Restart hook); each backend's fault tests restart a private broker")
	}
	g := group("persist")
	b := s.openGroup(t, g)
	topic := s.topic(t)
	s.subscribe(t, b, topic) // the group's queue must exist before the publish on RabbitMQ
	s.publish(t, b, topic, event("kept"))
	if err := b.Close(); err != nil {
		t.Logf("close before the restart: %v", err)
	}
	if err := s.h.Restart(s.ctx); err != nil {
		t.Fatalf("restart the broker: %v", err)
	}
	again := s.openGroup(t, g)
	m := s.receive(t, s.subscribe(t, again, topic), "the event published before the restart")
	if m.UUID != "kept" {
		t.Errorf("after the restart received %s, want kept", m.UUID)
	}
	m.Ack()
}

// checkReplay: a group that acknowledged everything is not where the data ends: a new group
// reads the topic again from the oldest retained event. (Rewinding an existing group is not
// in the portable API yet, so it is not checked here.)
func checkReplay(t T, s *env) {
	firstGroup := group("replay-first")
	first := s.openGroup(t, firstGroup)
	topic := s.topic(t)
	msgs := s.subscribe(t, first, topic)
	const n = 10
	for i := range n / 2 {
		s.publish(t, first, topic, event(fmt.Sprintf("early-%d", i)))
	}
	// Broker timestamps have millisecond resolution: keep the cut clear of both halves.
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	for i := range n / 2 {
		s.publish(t, first, topic, event(fmt.Sprintf("late-%d", i)))
	}
	for seen := map[string]bool{}; len(seen) < n; {
		m := s.receive(t, msgs, "the first reading")
		seen[m.UUID] = true
		m.Ack()
	}
	if err := first.Close(); err != nil {
		t.Logf("close the first group: %v", err)
	}
	again := s.open(t, "replay-again")
	msgs = s.subscribe(t, again, topic)
	for seen := map[string]bool{}; len(seen) < n; {
		m := s.receive(t, msgs, fmt.Sprintf("replayed event %d of %d", len(seen)+1, n))
		seen[m.UUID] = true
		m.Ack()
	}

	// The group that read everything, rewound to the middle (what `eventbus replay --since`
	// does), reads the later half again and not the earlier one, where the backend can move a
	// group; where it cannot, it must say so with ErrNotSupported.
	if _, err := again.Rewind(s.ctx, topic, firstGroup, bus.RewindTarget{At: mid}, false); err != nil {
		if errors.Is(err, bus.ErrNotSupported) {
			t.Logf("rewinding an existing group: not supported (%v); replay is by a new group only", err)
			return
		}
		t.Fatalf("rewind group %s of %s to %s: %v", firstGroup, topic, mid.Format(time.RFC3339Nano), err)
	}
	rewound := s.openGroup(t, firstGroup)
	msgs = s.subscribe(t, rewound, topic)
	for seen := map[string]bool{}; len(seen) < n/2; {
		m := s.receive(t, msgs, fmt.Sprintf("later event %d of %d again after the rewind", len(seen)+1, n/2))
		if strings.HasPrefix(m.UUID, "early-") {
			t.Errorf("event %s, published before %s, came back after a rewind to then", m.UUID, mid.Format(time.RFC3339Nano))
		}
		seen[m.UUID] = true
		m.Ack()
	}
}

// checkReplayByTime: a new group told to start at a time reads the events published from then
// on, and none before.
func checkReplayByTime(t T, s *env) {
	openAt := s.h.OpenAt
	if openAt == nil { // the portable way: bus.WithStartAt
		openAt = func(ctx context.Context, group string, at time.Time) (*bus.Bus, error) {
			return s.h.Open(ctx, group, bus.WithStartAt(at))
		}
	}
	b := s.open(t, "bytime")
	topic := s.topic(t)
	for i := range 3 {
		s.publish(t, b, topic, event(fmt.Sprintf("before-%d", i)))
	}
	// Stream ids and offsets' timestamps have millisecond resolution and come from the
	// broker's clock: leave a margin on both sides of the cut.
	time.Sleep(20 * time.Millisecond)
	cut := time.Now()
	time.Sleep(20 * time.Millisecond)
	for i := range 3 {
		s.publish(t, b, topic, event(fmt.Sprintf("after-%d", i)))
	}
	at, err := openAt(s.ctx, group("bytime-at"), cut)
	if err != nil {
		t.Fatalf("open a group starting at %s: %v", cut.Format(time.RFC3339Nano), err)
	}
	t.Cleanup(func() { _ = at.Close() })
	msgs := s.subscribe(t, at, topic)
	for seen := map[string]bool{}; len(seen) < 3; {
		m := s.receive(t, msgs, "the events published after the start time")
		if m.UUID[:6] == "before" {
			t.Errorf("event %s was published before the start time %s", m.UUID, cut.Format(time.RFC3339Nano))
		}
		seen[m.UUID] = true
		m.Ack()
	}
}

// checkNativeDelay: no portable API publishes with a delay yet, so nothing can hold a backend
// to it; a backend declaring it is reported as not checked.
func checkNativeDelay(t T, _ *env) {
	t.Skipf("declared, not checked: the portable API has no delayed publish yet")
}

// pipelineWindow is the max_in_flight the Pipelining check asks for.
const pipelineWindow = 4

// checkPipelining: with MaxInFlight N, N messages are handed out before any is acked, the
// N+1th is not, and it is once one of them is acked. All events share one key, so that on
// Kafka they sit in one partition (the window is per partition).
func checkPipelining(t T, s *env) {
	b := s.open(t, "pipeline", bus.WithMaxInFlight(pipelineWindow))
	if !b.Capabilities().Pipelining {
		t.Fatalf("opened with max_in_flight %d, the bus no longer declares pipelining: %v", pipelineWindow, b.Capabilities())
	}
	topic := s.topic(t)
	msgs := s.subscribe(t, b, topic)
	const n = pipelineWindow + 2
	for i := range n {
		ev := event(fmt.Sprintf("p-%d", i))
		ev.Key = "one-key"
		s.publish(t, b, topic, ev)
	}
	var held []*message.Message
	for len(held) < pipelineWindow {
		held = append(held, s.receive(t, msgs, fmt.Sprintf("un-acked message %d of a window of %d (pipelining hands out further messages before earlier ones are acked)", len(held)+1, pipelineWindow)))
	}
	// That nothing more comes can only be seen by waiting a little.
	if extra := quiet(msgs, 500*time.Millisecond); extra != nil {
		t.Errorf("message %s was handed out beyond the window of %d un-acked messages", extra.UUID, pipelineWindow)
		extra.Ack()
	}
	held[0].Ack()
	next := s.receive(t, msgs, "the next message once one in the window was acked")
	next.Ack()
	for _, m := range held[1:] {
		m.Ack()
	}
}

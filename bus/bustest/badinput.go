package bustest

import (
	"fmt"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/middleware"
)

// checkInvalidTopic: an empty topic, and the harness's RejectedTopic, give an error that says
// what is wrong with which topic, from Publish and from Subscribe, rather than a hang or a
// silent drop.
func checkInvalidTopic(t T, s *env) {
	b := s.open(t, "badtopic")
	err := b.Publish(s.ctx, "", event("nowhere"))
	if err == nil || !strings.Contains(err.Error(), "topic") {
		t.Errorf("Publish to the empty topic: got %v, want an error about the topic", err)
	}
	if _, err := b.Subscriber.Subscribe(s.ctx, ""); err == nil || !strings.Contains(err.Error(), "topic") {
		t.Errorf("Subscribe to the empty topic: got %v, want an error about the topic", err)
	}
	bad := s.h.RejectedTopic
	if bad == "" {
		t.Logf("the harness names no topic the broker rejects; only the empty topic was checked")
		return
	}
	if err := b.Publish(s.ctx, bad, event("nowhere")); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Publish to %q: got %v, want an error naming the topic", bad, err)
	}
	if _, err := b.Subscriber.Subscribe(s.ctx, bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Subscribe to %q: got %v, want an error naming the topic", bad, err)
	}
}

// checkUndecodable: messages that are not proper events (no ce_type and ce_source, a ce_time
// that is not a time, data that does not decode) go to the poison queue with reason
// "invalid", and the consumer goes on to handle the next event.
func checkUndecodable(t T, s *env) {
	b := s.open(t, "undecodable")
	topic := s.topic(t)
	poisoned := s.poisonReader(t, topic)
	var mu sync.Mutex
	handled := map[string]bool{}
	good := make(chan struct{})
	s.runRouter(t, b, topic, fmt.Sprintf(fastRetry, 3, 1, ""), func(m *message.Message) error {
		ev, err := bus.ParseEvent(m)
		if err != nil {
			return err
		}
		var data any
		if err := ev.DecodeData(nil, &data); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if !handled[m.UUID] {
			handled[m.UUID] = true
			if m.UUID == "good" {
				close(good)
			}
		}
		return nil
	}, nil)

	// Through the Watermill publisher, below the envelope that Publish enforces.
	noType := message.NewMessage("bad-no-type", []byte(`{}`))
	noType.Metadata.Set(bus.HeaderID, "bad-no-type")
	badTime := message.NewMessage("bad-time", []byte(`{}`))
	for k, v := range map[string]string{bus.HeaderID: "bad-time", bus.HeaderType: "t.v1", bus.HeaderSource: "s",
		bus.HeaderSpecVersion: bus.SpecVersion, bus.HeaderTime: "yesterday", bus.HeaderContentType: "application/json"} {
		badTime.Metadata.Set(k, v)
	}
	if err := b.Publisher.Publish(topic, noType, badTime); err != nil {
		t.Fatalf("publish malformed messages to %s: %v", topic, err)
	}
	s.publish(t, b, topic,
		bus.Event{ID: "bad-data", Type: "t.v1", Source: "s", ContentType: "application/json", Data: []byte("{not json")},
		bus.Event{ID: "good", Type: "t.v1", Source: "s", Data: map[string]int{"n": 1}})

	want := map[string]bool{"bad-no-type": true, "bad-time": true, "bad-data": true}
	for len(want) > 0 {
		pm := s.receive(t, poisoned, fmt.Sprintf("%d malformed messages in the poison queue", len(want)))
		pm.Ack()
		prov, err := middleware.ParseProvenance(pm)
		if err != nil {
			t.Errorf("poisoned %s: %v", pm.UUID, err)
		}
		if prov.Reason != middleware.ReasonInvalid {
			t.Errorf("poisoned %s has reason %q, want %q (%s)", pm.UUID, prov.Reason, middleware.ReasonInvalid, prov.Error)
		}
		delete(want, pm.UUID)
	}
	s.wait(t, good, func() string { return "the valid event published after the malformed ones was not handled" })
	mu.Lock()
	defer mu.Unlock()
	for id := range handled {
		if strings.HasPrefix(id, "bad-") {
			t.Errorf("the handler accepted malformed message %s", id)
		}
	}
}

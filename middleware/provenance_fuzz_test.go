package middleware_test

import (
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/middleware"
)

// FuzzParseProvenance feeds the poison-queue reader (the dlq commands, redrive) messages whose
// provenance headers are anything: written by this version, an older one, by hand, or damaged.
// It must not panic; a rejection is an error that says the message is not a poison-queue
// message and names the header; an accepted message has a reason, a topic and both failure
// times.
func FuzzParseProvenance(f *testing.F) {
	f.Add("exhausted", "enrollments", "lms-enrollment-consumer", "5", "0", "2026-11-23T12:00:00.123456789Z", "2026-11-23T12:05:00Z", "kafka", "3:1742")
	f.Add("parked", "certificates", "", "", "2", "2026-11-23T12:00:00+01:00", "2026-11-23T12:00:00+01:00", "rabbitmq", "lms.certificates#7")
	f.Add("invalid", "t", "g", "-1", "99999999999", "yesterday", "", "redis", "1732363200000-0")
	f.Add("exhausted", "enrollments", "g", "-3", "0", "2026-11-23T12:00:00Z", "2026-11-23T12:00:00Z", "kafka", "0:1")
	f.Add("", "", "", "0x10", "+3", "2026-02-30T12:00:00Z", "2026-11-23T25:00:00Z", "", "")
	f.Fuzz(func(t *testing.T, reason, topic, group, attempts, redrives, first, last, backend, coordinates string) {
		msg := message.NewMessage("evt-1", []byte(`{}`))
		set := func(k, v string) {
			if v != "" {
				msg.Metadata.Set(k, v)
			}
		}
		set(middleware.HeaderPoisonReason, reason)
		set(middleware.HeaderPoisonTopic, topic)
		set(middleware.HeaderPoisonGroup, group)
		set(middleware.HeaderPoisonAttempts, attempts)
		set(middleware.HeaderRedriveCount, redrives)
		set(middleware.HeaderPoisonFirstFailure, first)
		set(middleware.HeaderPoisonLastFailure, last)
		set(middleware.HeaderPoisonBackend, backend)
		set(middleware.HeaderPoisonCoordinates, coordinates)

		p, err := middleware.ParseProvenance(msg)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "message evt-1 is not a poison-queue message: ") || !strings.Contains(err.Error(), "eventbus_") {
				t.Fatalf("unclear rejection: %v", err)
			}
			return
		}
		if p.Reason == "" || p.Topic == "" || p.FirstFailure.IsZero() || p.LastFailure.IsZero() {
			t.Fatalf("accepted without reason, topic or failure times: %+v", p)
		}
		if p.Topic != topic || string(p.Reason) != reason || p.Group != group || p.Position.Coordinates != coordinates || p.Position.Backend != backend {
			t.Fatalf("accepted %+v from reason %q topic %q group %q backend %q coordinates %q", p, reason, topic, group, backend, coordinates)
		}
		if p.Attempts < 0 || p.RedriveCount < 0 {
			t.Fatalf("accepted a negative count: %+v", p)
		}
	})
}

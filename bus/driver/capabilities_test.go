package driver

import (
	"errors"
	"testing"
)

func TestRequireNamesBackendCapabilityAndNote(t *testing.T) {
	c := Capabilities{ConsumerGroups: true, Notes: map[Capability]string{Replay: "classic queues keep no history"}}
	if err := c.Require("rabbitmq", ConsumerGroups); err != nil {
		t.Fatalf("declared capability refused: %v", err)
	}
	err := c.Require("rabbitmq", ConsumerGroups, Replay)
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("want ErrNotSupported, got %v", err)
	}
	if want := "backend rabbitmq: replay (classic queues keep no history): not supported"; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	if got := c.String(); got != "consumer-groups" {
		t.Fatalf("String() = %q", got)
	}
}

package bus_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers keeps the layering of DESIGN.md: nothing imports "up". bus and bus/driver import
// no backend, router or middleware; config imports no broker client. A violation fails here,
// not in a review.
func TestLayers(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	for pkg, forbidden := range map[string][]string{
		"github.com/eventbus-go/eventbus/bus":        {"eventbus/backends", "eventbus/router", "eventbus/middleware", "sarama", "go-redis", "amqp091"},
		"github.com/eventbus-go/eventbus/bus/driver": {"eventbus/backends", "eventbus/router", "eventbus/middleware", "sarama", "go-redis", "amqp091"},
		"github.com/eventbus-go/eventbus/config":     {"eventbus/bus", "eventbus/backends", "sarama", "go-redis", "amqp091"},
		"github.com/eventbus-go/eventbus/middleware": {"eventbus/backends", "eventbus/router", "go-redis", "sarama", "amqp091"},
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.Contains(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

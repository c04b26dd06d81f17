package driver_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventbus-go/eventbus/bus/driver"
	"github.com/eventbus-go/eventbus/config"
)

type unitConfig struct{ N int }

type unitDriver struct{}

func (unitDriver) DefaultConfig() *unitConfig { return &unitConfig{N: 7} }

func (unitDriver) Open(_ context.Context, cfg *unitConfig, o driver.Options) (*driver.Conn, error) {
	if cfg.N == 0 {
		return nil, errors.New("n is zero")
	}
	return &driver.Conn{Capabilities: driver.Capabilities{Replay: o.ConsumerGroup == "replayers"}}, nil
}

func init() { driver.Register[unitConfig]("unit-test", unitDriver{}) }

func TestRegistryIsTypedAndKnowsTheSection(t *testing.T) {
	reg, err := driver.Lookup("unit-test")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Name != "unit-test" {
		t.Fatalf("name %q", reg.Name)
	}
	cfg, ok := reg.DefaultConfig().(*unitConfig)
	if !ok || cfg.N != 7 {
		t.Fatalf("default config %#v", reg.DefaultConfig())
	}
	conn, err := reg.Open(context.Background(), cfg, driver.Options{ConsumerGroup: "replayers"})
	if err != nil || !conn.Capabilities.Replay {
		t.Fatalf("open: %v, %+v", err, conn)
	}
	_, err = reg.Open(context.Background(), &struct{ N int }{1}, driver.Options{})
	if err == nil || !strings.Contains(err.Error(), "backend unit-test takes a config of type *driver_test.unitConfig") {
		t.Fatalf("a config of another type must be refused by name, got %v", err)
	}
	_, err = reg.Open(context.Background(), (*unitConfig)(nil), driver.Options{})
	if err == nil {
		t.Fatal("a nil config must be refused")
	}
	found := false
	for _, s := range config.Sections() {
		found = found || s == "unit-test"
	}
	if !found {
		t.Fatalf("Register did not make unit-test a config section: %v", config.Sections())
	}
}

func TestLookupSuggestsTheClosest(t *testing.T) {
	_, err := driver.Lookup("unit-tset")
	if !errors.Is(err, driver.ErrUnknownBackend) {
		t.Fatalf("want ErrUnknownBackend, got %v", err)
	}
	if !strings.Contains(err.Error(), `unknown backend "unit-tset" (did you mean unit-test?)`) {
		t.Fatalf("no suggestion: %v", err)
	}
	_, err = driver.Lookup("zzzzzzzzzzzz")
	if err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Fatalf("a far name gets no suggestion: %v", err)
	}
}

func TestRegisterRefusesDuplicatesAndBlanks(t *testing.T) {
	for name, f := range map[string]func(){
		"duplicate": func() { driver.Register[unitConfig]("unit-test", unitDriver{}) },
		"no name":   func() { driver.Register[unitConfig]("", unitDriver{}) },
		"no driver": func() { driver.Register[unitConfig]("unit-nil", nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			f()
		})
	}
}

func TestPositionString(t *testing.T) {
	for _, tc := range []struct {
		p    driver.Position
		want string
	}{
		{driver.Position{Backend: "kafka", Topic: "t", ConsumerGroup: "g", Coordinates: "3:1042"}, "kafka t 3:1042 (group g)"},
		{driver.Position{Backend: "redis", Topic: "t", Coordinates: "1-0"}, "redis t 1-0"},
		{driver.Position{Backend: "toy", Topic: "t", ConsumerGroup: "g"}, "toy t (group g)"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.p, got, tc.want)
		}
	}
	if _, ok := driver.PositionFrom(context.Background()); ok {
		t.Error("a bare context has no position")
	}
	p := driver.Position{Backend: "b", Topic: "t"}
	if got, ok := driver.PositionFrom(driver.ContextWithPosition(context.Background(), p)); !ok || got != p {
		t.Errorf("round trip: %+v %v", got, ok)
	}
}

func TestParseStartFrom(t *testing.T) {
	for in, want := range map[string]driver.StartFrom{
		"": driver.StartDefault, "oldest": driver.StartOldest, "earliest": driver.StartOldest, "Beginning": driver.StartOldest,
		"newest": driver.StartNewest, "latest": driver.StartNewest, " end ": driver.StartNewest,
	} {
		got, err := driver.ParseStartFrom(in)
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := driver.ParseStartFrom("sideways"); err == nil || !strings.Contains(err.Error(), `"sideways"`) {
		t.Errorf("sideways: %v", err)
	}
}

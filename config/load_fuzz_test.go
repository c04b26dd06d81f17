package config_test

import (
	"errors"
	"testing"

	"github.com/eventbus-go/eventbus/config"
)

// FuzzLoad feeds the loader any file: YAML of any shape (anchors, aliases, several documents,
// tags, ${} references) decoded onto a backend-like section with a Validate method. It must not
// panic or hang (cyclic and exponential aliases are refused), and every problem must be an
// ErrInvalid located in the file, with a message.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"backend: kafka\nkafka:\n  brokers: [k1:9092, k2:9092]\n  timeout: 5s\n  sasl:\n    username: lms\n    password: ${KAFKA_PASSWORD}\n  tls:\n    enabled: true\n    ca_file: ${file:/nonexistent}\n",
		"kafka:\n  topics:\n    - &t {name: enrollments, partitions: 3}\n    - *t\n  settings: {a: \"$$5\", b: '${X:-y}'}\n",
		"kafka: {brokers: &b [*b]}\n",
		"a0: &a0 [x, x]\na1: &a1 [*a0, *a0]\nkafka:\n  brokers: *a1\n",
		"backend: kafka\n---\nbackend: redis\n",
		"kafka:\n  port: ${PORT}\n  enabled: ${ON}\n  timeout: !!int 3\n  brokers: !!map {}\n",
		"kafka:\n  sasl:\n    password: 'pa55${word'\n  port: 1\n  port: 2\n",
		"- a\n- b\n",
		"",
		"kafka:\n  *x : 1\n",
		"&r kafka: *r\n",
	} {
		f.Add([]byte(s), "9093")
	}
	f.Fuzz(func(t *testing.T, data []byte, value string) {
		cfg, err := config.Parse("f.yaml", data)
		if err != nil {
			checkProblems(t, err)
			return
		}
		env := func(string) (string, bool) { return value, true }
		checkProblems(t, cfg.WithEnv(env).Section("kafka").Decode(defaults()))
		checkProblems(t, cfg.WithEnv(env).Section("router").Decode(defaults()))
	})
}

func checkProblems(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("not ErrInvalid: %v", err)
	}
	ps := config.Problems(err)
	if len(ps) == 0 {
		t.Fatalf("no located problem in %v", err)
	}
	for _, p := range ps {
		if p.File != "f.yaml" || p.Msg == "" || p.Line < 0 {
			t.Fatalf("problem not located or without a message: %#v", p)
		}
	}
}

package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzExpand feeds ${} expansion any scalar a config file can hold. It must not panic; a value
// without "$" is kept as it is; and an error never quotes the text before the first "${",
// which is often the start of a password written in clear.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"${KAFKA_PASSWORD}", "${PORT:-9092}", "${file:/run/secrets/rabbitmq-password}", "price: $$5",
		"hunter2${", "s3cr3t-pw${a-b}", "${}", "${:-x}", "${file:}", "$", "$$$", "${A}${B:-}${C:-${D}}", "no dollars", "pa55${word"} {
		f.Add(s, "value", true)
	}
	f.Fuzz(func(t *testing.T, s, value string, set bool) {
		lookup := func(string) (string, bool) { return value, set }
		readFile := func(path string) ([]byte, error) {
			if strings.HasPrefix(path, "/run/secrets/") {
				return []byte(value + "\n"), nil
			}
			return nil, errors.New("no such file")
		}
		out, err := expand(s, lookup, readFile)
		if !strings.Contains(s, "$") && (err != nil || out != s) {
			t.Fatalf("%q without $ became %q, %v", s, out, err)
		}
		if err == nil {
			return
		}
		if err.Error() == "" {
			t.Fatal("an error without a message")
		}
		i := strings.Index(s, "${")
		if i < 0 {
			t.Fatalf("%q has no ${ but failed: %v", s, err)
		}
		prefix := s[:i]
		if len(prefix) >= 6 && !strings.Contains(s[i:], prefix) && strings.Contains(err.Error(), prefix) {
			t.Fatalf("the error quotes the value's text %q: %v", prefix, err)
		}
	})
}

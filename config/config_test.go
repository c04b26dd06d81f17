package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/eventbus-go/eventbus/config"
)

// section is a stand-in for a backend's config type: nested blocks, a list, a duration, a
// secret, an int and a Validate method with paths relative to the section.
type section struct {
	Brokers  []string      `yaml:"brokers"`
	Timeout  time.Duration `yaml:"timeout"`
	Port     int           `yaml:"port"`
	Enabled  bool          `yaml:"enabled"`
	SASL     sasl          `yaml:"sasl"`
	TLS      config.TLS    `yaml:"tls"`
	Topics   []topic       `yaml:"topics"`
	Settings map[string]string
}

type sasl struct {
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
}

type topic struct {
	Name       string `yaml:"name"`
	Partitions int    `yaml:"partitions"`
}

func defaults() *section {
	return &section{Brokers: []string{"127.0.0.1:9092"}, Timeout: 10 * time.Second, Port: 9092}
}

func (s *section) Validate() error {
	var errs []error
	if len(s.Brokers) == 0 {
		errs = append(errs, config.Invalid("brokers", "must list at least one host:port"))
	}
	if s.Timeout <= 0 {
		errs = append(errs, config.Invalid("timeout", "must be positive"))
	}
	for i, tp := range s.Topics {
		if tp.Partitions < 1 {
			errs = append(errs, config.Invalid("topics["+string(rune('0'+i))+"].partitions", "must be at least 1"))
		}
	}
	errs = append(errs, config.Nest("tls", s.TLS.Validate()))
	return errors.Join(errs...)
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func decode(t *testing.T, doc string, vars map[string]string) (*section, error) {
	t.Helper()
	cfg, err := config.Parse("eventbus.yaml", []byte(doc))
	if err != nil {
		return nil, err
	}
	s := defaults()
	return s, cfg.WithEnv(env(vars)).Section("kafka").Decode(s)
}

func TestDecodeErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		env  map[string]string
		want []string // each problem, in order
	}{
		{
			name: "unknown key with a suggestion",
			doc:  "kafka:\n  brokers: [a:1]\n  timeot: 5s\n",
			want: []string{`eventbus.yaml:3: kafka.timeot: unknown key (did you mean "timeout"?)`},
		},
		{
			name: "unknown nested key lists the known ones",
			doc:  "kafka:\n  sasl:\n    user: x\n",
			want: []string{`eventbus.yaml:3: kafka.sasl.user: unknown key (known keys: password, username)`},
		},
		{
			name: "unknown top-level section",
			doc:  "backend: kafka\nkafak:\n  brokers: []\n",
			want: []string{`eventbus.yaml:2: kafak: unknown key (did you mean "kafka"?)`},
		},
		{
			name: "empty broker list fails validation on its line",
			doc:  "backend: kafka\nkafka:\n  timeout: 5s\n  brokers: []\n",
			want: []string{"eventbus.yaml:4: kafka.brokers: must list at least one host:port"},
		},
		{
			name: "null broker list",
			doc:  "kafka:\n  brokers:\n",
			want: []string{"eventbus.yaml:2: kafka.brokers: must list at least one host:port"},
		},
		{
			name: "unset variable without default",
			doc:  "kafka:\n  sasl:\n    password: ${KAFKA_PASSWORD}\n",
			want: []string{"eventbus.yaml:3: kafka.sasl.password: environment variable KAFKA_PASSWORD is not set (set it, or write ${KAFKA_PASSWORD:-default})"},
		},
		{
			name: "bad duration",
			doc:  "kafka:\n  timeout: 30\n",
			want: []string{`eventbus.yaml:2: kafka.timeout: "30" is not a duration: use Go syntax such as 500ms, 30s or 5m`},
		},
		{
			name: "bad integer from the environment",
			doc:  "kafka:\n  port: ${PORT}\n",
			env:  map[string]string{"PORT": "ninety"},
			want: []string{`eventbus.yaml:2: kafka.port: "ninety" is not a whole number`},
		},
		{
			name: "bad boolean",
			doc:  "kafka:\n  enabled: maybe\n",
			want: []string{`eventbus.yaml:2: kafka.enabled: "maybe" is not a boolean: use true or false`},
		},
		{
			name: "scalar where a list belongs",
			doc:  "kafka:\n  brokers: a:1\n",
			want: []string{`eventbus.yaml:2: kafka.brokers: expected a list, got "a:1"`},
		},
		{
			name: "list item validated on its own line",
			doc:  "kafka:\n  topics:\n    - name: a\n      partitions: 2\n    - name: b\n      partitions: 0\n",
			want: []string{"eventbus.yaml:6: kafka.topics[1].partitions: must be at least 1"},
		},
		{
			name: "missing key in a block",
			doc:  "kafka:\n  port: 1\n timeout: 2s\n",
			want: []string{"eventbus.yaml:3: did not find expected key"},
		},
		{
			name: "duplicate key",
			doc:  "kafka:\n  port: 1\n  port: 2\n",
			want: []string{"eventbus.yaml:3: kafka.port: key given twice"},
		},
		{
			name: "tls pair incomplete",
			doc:  "kafka:\n  tls:\n    enabled: true\n    cert_file: /nonexistent/c.pem\n",
			want: []string{
				"eventbus.yaml:4: kafka.tls.cert_file: cert_file and key_file must be given together",
				"eventbus.yaml:4: kafka.tls.cert_file: cannot read /nonexistent/c.pem: no such file or directory",
			},
		},
		{
			name: "every problem at once",
			doc:  "backend: kafka\nkafka:\n  brokerz: [a:1]\n  brokers: []\n  sasl:\n    password: ${NOPE}\n",
			want: []string{
				`eventbus.yaml:3: kafka.brokerz: unknown key (did you mean "brokers"?)`,
				"eventbus.yaml:6: kafka.sasl.password: environment variable NOPE is not set (set it, or write ${NOPE:-default})",
				"eventbus.yaml:4: kafka.brokers: must list at least one host:port",
			},
		},
		{
			name: "syntax error",
			doc:  "kafka:\n  brokers: [a:1\n",
			want: []string{"eventbus.yaml:2: did not find expected ',' or ']'"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, tc.doc, tc.env)
			require.Error(t, err)
			require.ErrorIs(t, err, config.ErrInvalid)
			var got []string
			for _, p := range config.Problems(err) {
				got = append(got, p.Error())
			}
			if len(got) == 0 {
				got = []string{err.Error()}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDecodeKeepsDefaultsAndExpands(t *testing.T) {
	s, err := decode(t, `
kafka:
  port: ${PORT}
  timeout: ${TIMEOUT:-45s}
  enabled: ${ENABLED}
  sasl:
    username: "${USER:-edx}"
    password: ${KAFKA_PASSWORD}
  settings:
    price: "$$5"
`, map[string]string{"PORT": "9093", "ENABLED": "true", "KAFKA_PASSWORD": "s3cr3t: #not a comment"})
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1:9092"}, s.Brokers, "absent key keeps its default")
	assert.Equal(t, 9093, s.Port)
	assert.Equal(t, 45*time.Second, s.Timeout)
	assert.True(t, s.Enabled)
	assert.Equal(t, "edx", s.SASL.Username)
	assert.Equal(t, "s3cr3t: #not a comment", s.SASL.Password.Value())
	assert.Equal(t, "$5", s.Settings["price"])
}

func TestEmptyVariableWithDefaultUsesDefault(t *testing.T) {
	s, err := decode(t, "kafka:\n  sasl:\n    username: ${U:-fallback}\n    password: ${P}\n", map[string]string{"U": "", "P": ""})
	require.NoError(t, err)
	assert.Equal(t, "fallback", s.SASL.Username)
	assert.Equal(t, config.Secret(""), s.SASL.Password, "set but empty is empty, not an error")
}

func TestSecretFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(path, []byte("from-file\n"), 0o600))
	s, err := decode(t, "kafka:\n  sasl:\n    password: ${file:"+path+"}\n", nil)
	require.NoError(t, err)
	assert.Equal(t, "from-file", s.SASL.Password.Value())

	_, err = decode(t, "kafka:\n  sasl:\n    password: ${file:/nonexistent/pw}\n", nil)
	require.ErrorContains(t, err, "eventbus.yaml:3: kafka.sasl.password: ${file:/nonexistent/pw}: open /nonexistent/pw: no such file or directory")
}

func TestSecretIsRedacted(t *testing.T) {
	s := sasl{Username: "edx", Password: "hunter2"}
	out, err := yaml.Marshal(s)
	require.NoError(t, err)
	assert.NotContains(t, string(out), "hunter2")
	assert.Contains(t, string(out), "[redacted]")
	for _, f := range []string{"%v", "%s", "%+v", "%#v"} {
		assert.NotContains(t, sprintf(f, s), "hunter2", f)
	}
	assert.Equal(t, "hunter2", s.Password.Value())
}

func TestDefaultsWithoutFile(t *testing.T) {
	cfg, err := config.LoadOrDefault(filepath.Join(t.TempDir(), "missing.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "kafka", cfg.Backend)
	assert.False(t, cfg.Section("kafka").Present())
	s := defaults()
	require.NoError(t, cfg.Section("kafka").Decode(s))
	assert.Equal(t, defaults(), s)

	_, err = config.Load(filepath.Join(t.TempDir(), "missing.yaml"))
	require.Error(t, err)
}

func TestEmptyFileAndBackend(t *testing.T) {
	cfg, err := config.Parse("e.yaml", nil)
	require.NoError(t, err)
	assert.Equal(t, "kafka", cfg.Backend)

	cfg, err = config.Parse("e.yaml", []byte("backend: ${EVENTBUS_BACKEND:-redis}\n"))
	require.NoError(t, err)
	assert.Equal(t, "redis", cfg.Backend)

	_, err = config.Parse("e.yaml", []byte("- a\n- b\n"))
	require.ErrorContains(t, err, "e.yaml:1: the file must be a mapping")

	_, err = config.Parse("e.yaml", []byte("backend:\n"))
	require.ErrorContains(t, err, "e.yaml:1: backend: must name a backend")
}

func TestErrorAtLocatesNestedKeys(t *testing.T) {
	cfg, err := config.Parse("e.yaml", []byte("backend: kafak\nkafka:\n  brokers:\n    - a:1\n    - b\n"))
	require.NoError(t, err)
	assert.Equal(t, `e.yaml:1: backend: unknown backend "kafak"`, cfg.ErrorAt("backend", "unknown backend %q", "kafak").Error())
	assert.Equal(t, "e.yaml:5: kafka.brokers[1]: bad", cfg.ErrorAt("kafka.brokers[1]", "bad").Error())
	assert.Equal(t, "e.yaml:2: kafka.sasl.password: missing", cfg.ErrorAt("kafka.sasl.password", "missing").Error())
	assert.Equal(t, "e.yaml: redis.addrs: missing", cfg.ErrorAt("redis.addrs", "missing").Error())
}

func TestUnterminatedReference(t *testing.T) {
	_, err := decode(t, "kafka:\n  sasl:\n    username: ${USER\n", nil)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "eventbus.yaml:3: kafka.sasl.username: unterminated ${"), err.Error())
}

// A value with a stray "${" is often a password written in clear: the error says where the
// reference starts, never the value.
func TestExpandErrorsDoNotQuoteTheValue(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"pa55${word-9f3k", "eventbus.yaml:3: kafka.sasl.password: unterminated ${ at character 5: close it with } or write $$ for a literal $"},
		{"pa55${word-9f3k}", "eventbus.yaml:3: kafka.sasl.password: ${ at character 5 does not start a variable name (letters, digits and _, not starting with a digit)"},
	} {
		_, err := decode(t, "kafka:\n  sasl:\n    password: '"+tc.value+"'\n", nil)
		require.Error(t, err)
		assert.Equal(t, tc.want, err.Error())
		assert.NotContains(t, err.Error(), "9f3k")
	}
}

// A tls: block that names files or a server name while TLS is off was ignored: the connection
// went out in plaintext although the file looked like it asked for TLS.
func TestTLSSettingsWhileDisabledAreErrors(t *testing.T) {
	_, err := decode(t, "kafka:\n  tls:\n    ca_file: /etc/ssl/ca.pem\n    server_name: kafka.internal\n", nil)
	require.ErrorIs(t, err, config.ErrInvalid)
	var got []string
	for _, p := range config.Problems(err) {
		got = append(got, p.Error())
	}
	assert.Equal(t, []string{
		"eventbus.yaml:3: kafka.tls.ca_file: is set but tls.enabled is false, so it would be ignored: set enabled: true or remove it",
		"eventbus.yaml:4: kafka.tls.server_name: is set but tls.enabled is false, so it would be ignored: set enabled: true or remove it",
	}, got)

	_, err = decode(t, "kafka:\n  tls:\n    enabled: false\n    cert_file: c.pem\n    key_file: k.pem\n    insecure_skip_verify: true\n", nil)
	got = nil
	for _, p := range config.Problems(err) {
		got = append(got, p.Error())
	}
	assert.Equal(t, []string{
		"eventbus.yaml:4: kafka.tls.cert_file: is set but tls.enabled is false, so it would be ignored: set enabled: true or remove it",
		"eventbus.yaml:5: kafka.tls.key_file: is set but tls.enabled is false, so it would be ignored: set enabled: true or remove it",
		"eventbus.yaml:6: kafka.tls.insecure_skip_verify: is set but tls.enabled is false, so it would be ignored: set enabled: true or remove it",
	}, got)

	_, err = decode(t, "kafka:\n  tls:\n    enabled: false\n", nil)
	assert.NoError(t, err, "TLS off with nothing else set is fine")
}

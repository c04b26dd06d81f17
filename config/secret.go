package config

import "log/slog"

// Secret is a string that must not be shown: a password, a SASL secret, a token. It prints,
// logs and marshals as "[redacted]"; Value returns the real string for the one place that needs it.
// Give it in the file as ${VAR} or ${file:/run/secrets/name} rather than in clear.
type Secret string

const redacted = "[redacted]"

// Value returns the secret itself. Call it only where the secret is handed to a broker client.
func (s Secret) Value() string { return string(s) }

// String returns "[redacted]", or "" when the secret is empty so that "unset" stays visible.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// MarshalYAML redacts the secret in `config print`.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText redacts the secret in JSON and any other text encoding.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue redacts the secret in log/slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

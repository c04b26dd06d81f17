package schema

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/eventbus-go/eventbus/config"
)

// Section is the config file's top-level section this package owns.
const Section = "schemas"

func init() { config.RegisterSection(Section) }

// The modes of the schemas: section; see the package documentation.
const (
	ModeJSON    = "json"
	ModeAvro    = "avro"
	ModeOpenEdX = "openedx"
)

// Config is the schemas: section:
//
//	schemas:
//	  mode: openedx            # json (default), avro or openedx
//	  catalog: schemas/        # directory of <event type>/<n>.avsc; relative to the config file
//	  registry:                # Kafka in openedx mode only
//	    url: https://registry.example.com
//	    username: ${REGISTRY_KEY}
//	    password: ${REGISTRY_SECRET}
//	    auto_register: true
//	    tls: {ca_file: ca.pem}
type Config struct {
	// Mode is json (default: no schema layer), avro or openedx.
	Mode string `yaml:"mode"`
	// Catalog is the directory of schemas; required unless the mode is json. A relative path is
	// taken from the config file's directory.
	Catalog string `yaml:"catalog"`
	// Registry is the schema registry; required in openedx mode on Kafka, unused elsewhere.
	Registry RegistryConfig `yaml:"registry"`
	// SourceLib, when set, is written as the sourcelib header/field on events that carry none:
	// Open edX's consumers read it as a dotted version of integers ("9.5.1"). Default: unset,
	// and Open edX's consumers use their own default.
	SourceLib string `yaml:"source_lib"`
}

// RegistryConfig is the schemas.registry: block.
type RegistryConfig struct {
	// URL is the registry's base URL, http or https. Default: none.
	URL string `yaml:"url"`
	// Username and Password are sent as HTTP basic auth when Username is set (on Confluent
	// Cloud, the API key and secret). Default: none.
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	// AutoRegister registers a schema under its subject on its first publish, as Open edX's
	// producers do. When false, publishing an event whose schema is not registered fails.
	// Default: true.
	AutoRegister bool `yaml:"auto_register"`
	// TLS configures https. Default: the system's roots.
	TLS config.TLS `yaml:"tls"`
	// Timeout bounds each request to the registry. Default: 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns the section's defaults: mode json, auto_register true, 10s timeout.
func DefaultConfig() *Config {
	return &Config{Mode: ModeJSON, Registry: RegistryConfig{AutoRegister: true, Timeout: 10 * time.Second}}
}

// Validate checks the section.
func (c *Config) Validate() error {
	switch c.Mode {
	case ModeJSON, ModeAvro, ModeOpenEdX:
	default:
		return config.Invalid("mode", "%q: want json, avro or openedx", c.Mode)
	}
	if c.Mode != ModeJSON && c.Catalog == "" {
		return config.Invalid("catalog", "mode %s needs a catalog: the directory of <event type>/<n>.avsc schemas", c.Mode)
	}
	if c.Registry.Timeout <= 0 {
		return config.Invalid("registry.timeout", "%s: must be positive", c.Registry.Timeout)
	}
	if err := c.Registry.TLS.Validate(); err != nil {
		return config.Invalid("registry.tls", "%v", err)
	}
	return nil
}

// FromConfig decodes and validates the schemas: section of cfg onto the defaults; the catalog
// path comes back resolved against the config file's directory.
func FromConfig(cfg *config.Config) (*Config, error) {
	c := DefaultConfig()
	if err := cfg.Section(Section).Decode(c); err != nil {
		return nil, err
	}
	if c.Catalog != "" && !filepath.IsAbs(c.Catalog) && cfg.File != "" {
		c.Catalog = filepath.Join(filepath.Dir(cfg.File), c.Catalog)
	}
	return c, nil
}

// NewRegistryFromConfig returns the client the registry: block describes.
func NewRegistryFromConfig(c RegistryConfig) (*Registry, error) {
	if c.URL == "" {
		return nil, fmt.Errorf("schemas.registry.url is not set")
	}
	o := RegistryOptions{Username: c.Username, Password: c.Password.Value(), Timeout: c.Timeout}
	if c.TLS.Enabled {
		t, err := c.TLS.Build()
		if err != nil {
			return nil, fmt.Errorf("schemas.registry.tls: %w", err)
		}
		o.TLS = t
	}
	return NewRegistry(c.URL, o)
}

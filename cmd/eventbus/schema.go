package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/schema"
	"github.com/eventbus-go/eventbus/schema/registrytest"
)

// openBus opens the bus cfg describes with its schemas: section applied (schema.Open): the
// Avro codec in avro and openedx mode, the registry framing on Kafka in openedx mode.
func openBus(ctx context.Context, cfg *config.Config, opts ...bus.Option) (*bus.Bus, error) {
	return schema.Open(ctx, cfg, opts...)
}

// openBus opens the bus of a command that talks to the broker: cfg's, with its schemas
// applied, logging through the logger --log-level asks for, with opts.
func (g *globals) openBus(cmd *cobra.Command, cfg *config.Config, opts ...bus.Option) (*bus.Bus, error) {
	logger, err := g.logger(cmd)
	if err != nil {
		return nil, err
	}
	return openBus(cmd.Context(), cfg, append([]bus.Option{bus.WithLogger(logger)}, opts...)...)
}

// schemaData turns a JSON event read by `publish` into the value the bus's Avro codec encodes,
// when the bus has one (avro or openedx mode); other events pass unchanged.
func schemaData(b *bus.Bus, ev bus.Event) (bus.Event, error) {
	codec, ok := b.Codec().(*schema.Codec)
	raw, isBytes := ev.Data.([]byte)
	if !ok || !isBytes || !strings.HasPrefix(ev.ContentType, "application/json") {
		return ev, nil
	}
	v, err := codec.FromJSON(ev.Type, raw)
	if err != nil {
		return ev, fmt.Errorf("event of type %s: %w", ev.Type, err)
	}
	ev.Data, ev.ContentType = v, ""
	return ev, nil
}

// decodeSchemaPayload sets out.Payload to msg's data decoded with the bus's Avro codec, as
// JSON, and reports whether it did: only when the bus has one and the data decodes.
func decodeSchemaPayload(b *bus.Bus, msg *message.Message, out *consumedEvent) bool {
	if _, ok := b.Codec().(*schema.Codec); !ok || msg.Metadata.Get(bus.HeaderInvalidReason) != "" {
		return false
	}
	ev, err := bus.ParseEvent(msg)
	if err != nil {
		return false
	}
	var v any
	if err := ev.DecodeData(b.Codec(), &v); err != nil {
		return false
	}
	p, err := json.Marshal(v)
	if err != nil {
		return false
	}
	out.Payload = p
	return true
}

func newSchemaCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Check event schemas for compatibility and register them with a schema registry",
		Long: `A schema catalog is a directory with one sub-directory per event type (named after its
ce_type) holding one Avro schema per version: 1.avsc, 2.avsc, ... Events are written with the
highest version. The config's schemas: section points the bus at a catalog.`,
	}
	cmd.AddCommand(newSchemaCheckCmd(g), newSchemaRegisterCmd(g))
	return cmd
}

func newSchemaCheckCmd(g *globals) *cobra.Command {
	var catalog, against, level string
	cmd := &cobra.Command{
		Use:   "check --catalog DIR [--against DIR|URL] [--level backward|forward|full]",
		Short: "Check that each version of each event type is compatible with the one before",
		Long: `check verifies, for each event type in the catalog, that every schema version can follow
the one before at the level asked (backward by default: consumers with the newer schema read
data written with the older). With --against, the newest version of each type is also checked
against what is deployed: another catalog directory, or a schema registry's URL (every subject
holding the type's record, as Open edX names them: <topic>-<event type>.CloudEvent).
It exits non-zero, naming the event type, the versions and the field, on an incompatible change.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lvl, err := schema.ParseLevel(level)
			if err != nil {
				return fmt.Errorf("--level: %w", err)
			}
			c, err := schema.LoadCatalog(catalog)
			if err != nil {
				return err
			}
			problems := schema.CheckCatalog(c, lvl)
			checked := fmt.Sprintf("%d event types in %s", len(c.Types()), catalog)
			switch {
			case against == "":
			case strings.HasPrefix(against, "http://") || strings.HasPrefix(against, "https://"):
				reg, err := registryFor(g, cmd, against)
				if err != nil {
					return err
				}
				subjects, more, err := schema.CheckAgainstRegistry(cmd.Context(), c, reg, lvl)
				if err != nil {
					return err
				}
				problems = append(problems, more...)
				checked += fmt.Sprintf(" against %d subjects of %s", len(subjects), reg.URL())
			default:
				older, err := schema.LoadCatalog(against)
				if err != nil {
					return fmt.Errorf("--against: %w", err)
				}
				problems = append(problems, schema.CheckAgainstCatalog(c, older, lvl)...)
				checked += " against " + against
			}
			if len(problems) > 0 {
				errs := make([]error, len(problems))
				for i, p := range problems {
					errs[i] = p
				}
				return fmt.Errorf("%d incompatible schema changes (%s):\n%w", len(problems), lvl, errors.Join(errs...))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %s, %s compatible\n", checked, lvl)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&catalog, "catalog", "", "catalog directory (required)")
	fl.StringVar(&against, "against", "", "what is deployed: a catalog directory or a schema registry URL")
	fl.StringVar(&level, "level", schema.Backward, "compatibility level: backward, forward or full")
	_ = cmd.MarkFlagRequired("catalog")
	return cmd
}

func newSchemaRegisterCmd(g *globals) *cobra.Command {
	var catalog, topic, registryURL string
	cmd := &cobra.Command{
		Use:   "register --catalog DIR --topic T [--registry URL]",
		Short: "Register the newest schema of each event type for a topic with the schema registry",
		Long: `register does what the first publish in openedx mode does with auto_register on: it registers
the newest schema of each event type under <topic>-<event type>.CloudEvent and the key schema
under <topic>-string, and prints each subject with its schema id. Use it where the registry
refuses automatic registration (schemas.registry.auto_register: false). The registry is
--registry, else the config file's schemas.registry (with its credentials and TLS).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := schema.LoadCatalog(catalog)
			if err != nil {
				return err
			}
			reg, err := registryFor(g, cmd, registryURL)
			if err != nil {
				return err
			}
			done, err := schema.RegisterCatalog(cmd.Context(), c, reg, topic)
			for _, r := range done {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\tid %d\n", r.Subject, r.ID)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&catalog, "catalog", "", "catalog directory (required)")
	fl.StringVar(&topic, "topic", "", "topic the schemas are for (required)")
	fl.StringVar(&registryURL, "registry", "", "schema registry URL (default: the config's schemas.registry.url)")
	_ = cmd.MarkFlagRequired("catalog")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

// registryFor returns a registry client: for url when given, with the config file's
// credentials and TLS when its schemas.registry.url is the same or the config names one.
func registryFor(g *globals, cmd *cobra.Command, url string) (*schema.Registry, error) {
	rc := schema.DefaultConfig().Registry
	if g.configGiven(cmd) {
		cfg, err := g.loadConfig(cmd)
		if err != nil {
			return nil, err
		}
		sc, err := schema.FromConfig(cfg)
		if err != nil {
			return nil, err
		}
		if url == "" || url == sc.Registry.URL {
			rc = sc.Registry
		}
	}
	if url != "" {
		rc.URL = url
	}
	if rc.URL == "" {
		return nil, errors.New("no schema registry: give --registry or set schemas.registry.url in the config file")
	}
	return schema.NewRegistryFromConfig(rc)
}

// startDevRegistry serves an embedded schema registry at addr for `eventbus dev`, when addr is
// set, and returns what stops it.
func startDevRegistry(cmd *cobra.Command, addr string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	reg, err := registrytest.StartAt(addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "schema registry listening on %s (in memory)\n", reg.URL())
	return func() { _ = reg.Close() }, nil
}

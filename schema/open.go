package schema

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// Open is bus.Open with the schemas: section of cfg applied: in mode json it is bus.Open; in
// mode avro the bus encodes event data with the catalog's Avro codec; in mode openedx it also,
// on Kafka, frames values and keys for the schema registry and writes Open edX's headers. A
// bus.WithCodec among opts is overridden unless the mode is json.
func Open(ctx context.Context, cfg *config.Config, opts ...bus.Option) (*bus.Bus, error) {
	sc, err := FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	if sc.Mode == ModeJSON {
		return bus.Open(ctx, cfg, opts...)
	}
	cat, err := LoadCatalog(sc.Catalog)
	if err != nil {
		return nil, cfg.WrapAt("schemas.catalog", err)
	}
	var reg *Registry
	if sc.Mode == ModeOpenEdX && cfg.Backend == "kafka" {
		if sc.Registry.URL == "" {
			return nil, cfg.ErrorAt("schemas.registry.url", "mode openedx on kafka needs the schema registry's url: Open edX frames every value and key with a registry schema id")
		}
		if reg, err = NewRegistryFromConfig(sc.Registry); err != nil {
			return nil, cfg.WrapAt("schemas.registry", err)
		}
	}
	b, err := bus.Open(ctx, cfg, append(opts, bus.WithCodec(NewCodec(cat)))...)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		if err := wrapKafka(b, cat, reg, sc); err != nil {
			return nil, errors.Join(err, b.Close())
		}
	}
	if sc.Mode == ModeOpenEdX && cfg.Backend == "redis" {
		host, err := os.Hostname()
		if err != nil {
			return nil, errors.Join(fmt.Errorf("schemas: host name for the sourcehost field: %w", err), b.Close())
		}
		// edx-event-bus-redis writes these fields on every entry; the Redis backend writes a
		// metadata key as the field of that name.
		b.Publisher = &defaultsPublisher{next: b.Publisher, defaults: map[string]string{
			"minorversion": "0", HeaderSourceHost: host, HeaderSourceLib: sc.SourceLib,
		}}
	}
	return b, nil
}

// defaultsPublisher sets metadata that a message lacks before handing it on.
type defaultsPublisher struct {
	next     message.Publisher
	defaults map[string]string
}

func (p *defaultsPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, msg := range msgs {
		for k, v := range p.defaults {
			setDefault(msg.Metadata, k, v)
		}
	}
	return p.next.Publish(topic, msgs...)
}

func (p *defaultsPublisher) Close() error { return p.next.Close() }

// wrapKafka puts the registry framing around b's publisher and subscriber.
func wrapKafka(b *bus.Bus, cat *Catalog, reg *Registry, sc *Config) error {
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("schemas: host name for the sourcehost header: %w", err)
	}
	r := &resolver{catalog: cat, registry: reg, autoRegister: sc.Registry.AutoRegister, sourceHost: host, sourceLib: sc.SourceLib}
	b.Publisher = &kafkaPublisher{next: b.Publisher, r: r}
	b.Subscriber = &kafkaSubscriber{next: b.Subscriber, r: r, logger: b.Logger(), closed: make(chan struct{})}
	return nil
}

package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/router"
	"github.com/eventbus-go/eventbus/schema"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or show the configuration",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check the config file: every problem with its file, line and key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, _, _, err := loadEffective(g, cmd)
			if err != nil {
				return err
			}
			name := cfg.File
			if name == "" {
				name = "built-in defaults"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (backend %s)\n", name, cfg.Backend)
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration, defaults filled in, secrets redacted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, backendCfg, routerCfg, schemaCfg, err := loadEffective(g, cmd)
			if err != nil {
				return err
			}
			doc := yaml.Node{Kind: yaml.MappingNode}
			add := func(key string, v any) error {
				var n yaml.Node
				if err := n.Encode(v); err != nil {
					return err
				}
				doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &n)
				return nil
			}
			if err := add("backend", cfg.Backend); err != nil {
				return err
			}
			if err := add(cfg.Backend, backendCfg); err != nil {
				return err
			}
			if err := add("router", routerCfg); err != nil {
				return err
			}
			if err := add(schema.Section, schemaCfg); err != nil {
				return err
			}
			source := cfg.File
			if source == "" {
				source = "built-in defaults (no config file)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# effective configuration from %s; secrets are redacted\n", source)
			enc := yaml.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent(2)
			if err := enc.Encode(&doc); err != nil {
				return err
			}
			return enc.Close()
		},
	})
	return cmd
}

// loadEffective loads the file and decodes the selected backend's, the router's (the router
// and its middleware) and the schemas' sections, collecting the problems of all three.
func loadEffective(g *globals, cmd *cobra.Command) (*config.Config, any, router.Config, *schema.Config, error) {
	cfg, err := g.loadConfig(cmd)
	if err != nil {
		return nil, nil, router.Config{}, nil, err
	}
	backendCfg, berr := bus.BackendConfig(cfg)
	routerCfg, rerr := router.LoadConfig(cfg)
	schemaCfg, serr := schema.FromConfig(cfg) // checked here, applied by openBus
	if berr != nil || rerr != nil || serr != nil {
		return nil, nil, router.Config{}, nil, errors.Join(berr, rerr, serr)
	}
	return cfg, backendCfg, routerCfg, schemaCfg, nil
}

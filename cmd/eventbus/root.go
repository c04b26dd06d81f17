package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/config"
)

// globals are the flags every command shares.
type globals struct {
	configPath string
	logLevel   string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "eventbus",
		Short: "Publish, consume and operate events on Kafka, Redis Streams or RabbitMQ",
		Long: `eventbus gives services one publish/subscribe API over Kafka (the default), Redis Streams
and RabbitMQ; the config file picks the broker. This tool runs a demo, serves an embedded
Kafka broker for development, publishes and consumes events, and checks config files.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", config.DefaultFile, "config file; when the default is absent, built-in defaults are used")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	root.AddCommand(newDemoCmd(g), newDevCmd(g), newPublishCmd(g), newConsumeCmd(g), newConfigCmd(g), newDLQCmd(g), newSchemaCmd(g), newConformanceCmd(g))
	return root
}

// loadConfig reads --config. The default path may be absent (built-in defaults); a path the
// user named must exist.
func (g *globals) loadConfig(cmd *cobra.Command) (*config.Config, error) {
	if cmd.Flags().Changed("config") {
		return config.Load(g.configPath)
	}
	return config.LoadOrDefault(g.configPath)
}

// configGiven reports whether a config file is in play: named with --config or present at the
// default path.
func (g *globals) configGiven(cmd *cobra.Command) bool {
	if cmd.Flags().Changed("config") {
		return true
	}
	cfg, err := config.LoadOrDefault(g.configPath)
	return err != nil || cfg.File != ""
}

func (g *globals) logger(cmd *cobra.Command) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})), nil
}

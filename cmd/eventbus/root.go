package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// globals are the flags every command shares.
type globals struct {
	configPath string
	logLevel   string

	loaded *config.Config // the config the command read, for hints on its errors
}

func newRootCmd() *cobra.Command {
	root, _ := newRoot()
	return root
}

func newRoot() (*cobra.Command, *globals) {
	g := &globals{}
	root := &cobra.Command{
		Use:   "eventbus",
		Short: "Publish, consume and operate events on Kafka, Redis Streams or RabbitMQ",
		Long: `eventbus gives services one publish/subscribe API over Kafka (the default), Redis Streams
and RabbitMQ; the config file picks the broker. This tool runs a demo, serves an embedded
Kafka broker for development, publishes and consumes events, operates consumer groups (status,
replay) and poison queues (dlq), and checks config files.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Checked for every command, those that log nothing included, so that a typo in
		// --log-level is found where it is made, not in the one command that logs.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", config.DefaultFile, "config file; when the default is absent, built-in defaults are used")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	root.AddCommand(newDemoCmd(g), newDevCmd(g), newPublishCmd(g), newConsumeCmd(g), newConfigCmd(g), newDLQCmd(g), newSchemaCmd(g), newConformanceCmd(g), newBenchCmd(g), newReplayCmd(g), newStatusCmd(g))
	return root, g
}

// loadConfig reads --config. The default path may be absent (built-in defaults); a path the
// user named must exist.
func (g *globals) loadConfig(cmd *cobra.Command) (*config.Config, error) {
	var cfg *config.Config
	var err error
	if cmd.Flags().Changed("config") {
		cfg, err = config.Load(g.configPath)
	} else {
		cfg, err = config.LoadOrDefault(g.configPath)
	}
	if err == nil {
		g.loaded = cfg
	}
	return cfg, err
}

// hint is the next step for an error a broker gave, naming the config section that decides
// it; "" when the error is not one the config can fix.
func (g *globals) hint(err error) string {
	if g.loaded == nil {
		return ""
	}
	where := "the built-in defaults (no config file)"
	if g.loaded.File != "" {
		where = g.loaded.File
	}
	switch {
	case errors.Is(err, bus.ErrUnavailable):
		return fmt.Sprintf("hint: is the broker up? check the addresses in the %s: section of %s", g.loaded.Backend, where)
	case errors.Is(err, bus.ErrUnauthorized):
		return fmt.Sprintf("hint: the broker refused the credentials or permissions: check the %s: section of %s", g.loaded.Backend, where)
	}
	return ""
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

// logger returns the logger --log-level asks for, writing text lines to stderr. It also
// routes go-redis' own log lines (which otherwise go to stderr in a format of their own,
// whatever the level) through it, at warn.
func (g *globals) logger(cmd *cobra.Command) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	l := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	goredis.SetLogger(redisLogger{l: l.With("component", "go-redis")})
	goredis.SetLogLevel(redisLogLevel(level))
	return l, nil
}

// redisLogger adapts slog to go-redis' logger. go-redis' lines carry no level of their own
// (its level is a global filter, set to match --log-level), so they are logged at warn: what
// it prints is about connections and commands that did not go as asked.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.Log(ctx, slog.LevelWarn, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}

func redisLogLevel(l slog.Level) logging.LogLevelT {
	switch {
	case l <= slog.LevelDebug:
		return logging.LogLevelDebug
	case l <= slog.LevelInfo:
		return logging.LogLevelInfo
	case l <= slog.LevelWarn:
		return logging.LogLevelWarn
	}
	return logging.LogLevelError
}

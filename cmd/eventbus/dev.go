package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
)

func newDevCmd(g *globals) *cobra.Command {
	var (
		port       int
		dataDir    string
		partitions int32
		registry   string
	)
	cmd := &cobra.Command{
		Use:   "dev [--port 9092] [--data-dir DIR]",
		Short: "Run an embedded Kafka broker on 127.0.0.1 until interrupted",
		Long: `dev serves a Kafka-protocol broker inside this process, on 127.0.0.1:9092 by default, which
is where the default configuration points: a service run with no config file talks to it. With
--data-dir the broker keeps topics, records and committed offsets across restarts.

It is a development broker (github.com/twmb/franz-go/pkg/kfake), not a production one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger(cmd)
			if err != nil {
				return err
			}
			b, err := embedded.Start(embedded.Options{Port: port, DataDir: dataDir, Partitions: partitions, Logger: logger})
			if err != nil {
				return err
			}
			stopRegistry, err := startDevRegistry(cmd, registry)
			if err != nil {
				return errors.Join(err, b.Close())
			}
			defer stopRegistry()
			where := "in memory"
			if dataDir != "" {
				where = "in " + dataDir
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Kafka-protocol broker listening on %s (data %s); Ctrl-C to stop\n", b.Addrs()[0], where)
			<-cmd.Context().Done()
			if err := b.Close(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "broker stopped")
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "port", 9092, "port to listen on at 127.0.0.1 (0: any free port)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep the broker's data in this directory across restarts")
	cmd.Flags().Int32Var(&partitions, "partitions", 1, "partitions of auto-created topics")
	cmd.Flags().StringVar(&registry, "schema-registry", "", "also serve an embedded schema registry at this host:port (e.g. 127.0.0.1:8081), for schemas: mode: openedx")
	return cmd
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/conformance"
)

func newConformanceCmd(g *globals) *cobra.Command {
	var (
		pattern string
		prefix  string
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "conformance",
		Short: "Check that the configured deployment keeps what its backend declares",
		Long: `conformance runs the conformance suite (package bus/bustest) against the brokers the config
file names: delivery, redelivery, consumer groups, ordering, replay, pipelining, the router's
middleware and bad input. A capability the backend does not declare is checked to be refused
and reported as skipped with the reason.

It works in topics of its own (--topic-prefix, by default "eventbus-conformance-<run>-"), in
throwaway consumer groups,
and removes what it created: Redis streams are deleted, Kafka topics are deleted through the
admin API (the user needs the right to), RabbitMQ stream queues are deleted and group queues
expire once unused (on the configured vhost; the shared exchange stays).

It prints one line per check (or JSON with --json) and exits 1 when any check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd)
			if err != nil {
				return err
			}
			selected, err := bustest.Select(pattern)
			if err != nil {
				return fmt.Errorf("--run: %w", err)
			}
			logger := slog.New(slog.DiscardHandler) // the checks' deliberate failures would log warnings
			if cmd.Flags().Changed("log-level") {
				if logger, err = g.logger(cmd); err != nil {
					return err
				}
			}
			if prefix == "" {
				prefix = "eventbus-conformance-" + strings.ToLower(watermill.NewShortUUID()[:8]) + "-"
			}
			h, err := conformance.Harness(cfg, conformance.Options{TopicPrefix: prefix, Logger: logger})
			if err != nil {
				return err
			}
			h.Timeout = timeout
			results := bustest.RunChecks(cmd.Context(), h, selected)
			if len(results) == 0 {
				var names []string
				for _, c := range bustest.Checks() {
					names = append(names, c.Name)
				}
				return fmt.Errorf("--run %q matches no check; the checks are %s", pattern, strings.Join(names, ", "))
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			} else if err := printResults(out, results); err != nil {
				return err
			}
			if failed := count(results, bustest.Fail); failed > 0 {
				return fmt.Errorf("%d of %d checks failed on %s", failed, len(results), h.Name)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pattern, "run", "", "run only the checks whose name matches this regular expression, e.g. 'Delivery|Middleware/'")
	cmd.Flags().StringVar(&prefix, "topic-prefix", "", `start of every topic the checks create (default "eventbus-conformance-<run>-")`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as a JSON array")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "time limit of each check")
	return cmd
}

// printResults writes the results as a table and a summary line.
func printResults(w io.Writer, results []bustest.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tBACKEND\tRESULT\tTIME\tDETAIL")
	for _, r := range results {
		detail := strings.Join(strings.Fields(r.Detail), " ")
		if len(detail) > 120 {
			detail = detail[:117] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Check, r.Backend, r.Outcome, r.Duration.Round(time.Millisecond), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", count(results, bustest.Pass), count(results, bustest.Fail), count(results, bustest.Skip))
	return err
}

func count(results []bustest.Result, o bustest.Outcome) int {
	n := 0
	for _, r := range results {
		if r.Outcome == o {
			n++
		}
	}
	return n
}

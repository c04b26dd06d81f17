// Command eventbus is the operator's tool for the eventbus framework: it runs a zero-setup demo,
// serves an embedded Kafka broker for development, publishes and consumes events, and checks
// configuration files, against whichever backend the config file selects.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	// The backends this binary can talk to; a service that embeds eventbus imports its own.
	_ "github.com/eventbus-go/eventbus/backends/kafka"
	_ "github.com/eventbus-go/eventbus/backends/kafka/embedded"
	_ "github.com/eventbus-go/eventbus/backends/rabbitmq"
	_ "github.com/eventbus-go/eventbus/backends/redis"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code: 0 on success, 1 on any
// error, printed to stderr as "eventbus: <reason>" (one line per problem for a bad config file).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		// One line per problem, so a config file with three mistakes shows three lines.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "eventbus: "+line)
		}
		return 1
	}
	return 0
}

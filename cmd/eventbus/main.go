// Command eventbus is the operator's tool for the eventbus framework: it runs a zero-setup demo,
// serves an embedded Kafka broker for development, publishes and consumes events, and checks
// configuration files, against whichever backend the config file selects.
package main

import (
	"context"
	"errors"
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
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stoppedBySignal is the cause of the context cancelled by SIGINT or SIGTERM.
type stoppedBySignal struct{ sig syscall.Signal }

func (s stoppedBySignal) Error() string { return "stopped by " + s.sig.String() }

// signalContext returns a context cancelled, with a stoppedBySignal cause, by the first SIGINT
// or SIGTERM. Only the first is caught: a second Ctrl-C kills the process the default way, for
// an operator whose command does not stop fast enough.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			sig, _ := s.(syscall.Signal)
			cancel(stoppedBySignal{sig: sig})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// errInterrupted is returned by a command that a signal stopped before it finished its work
// (consume before --count events): run exits 128+signal, the shell's convention (130 for
// Ctrl-C), without printing it as an error.
type errInterrupted struct{ sig syscall.Signal }

func (e errInterrupted) Error() string { return "interrupted by " + e.sig.String() }

// interrupted returns the errInterrupted for ctx when a signal cancelled it, else nil.
func interrupted(ctx context.Context) error {
	var s stoppedBySignal
	if errors.As(context.Cause(ctx), &s) {
		return errInterrupted(s)
	}
	return nil
}

// run executes one command line and returns the process exit code: 0 on success, 128+signal
// when SIGINT (130) or SIGTERM (143) stopped a command short of its work, 1 on any other error,
// printed to stderr as "eventbus: <reason>" (one line per problem for a bad config file).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root, g := newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		var intr errInterrupted
		if errors.As(err, &intr) {
			return 128 + int(intr.sig)
		}
		// One line per problem, so a config file with three mistakes shows three lines.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "eventbus: "+line)
		}
		if h := g.hint(err); h != "" {
			fmt.Fprintln(stderr, "eventbus: "+h)
		}
		return 1
	}
	return 0
}

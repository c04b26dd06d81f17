package kafka_test

import (
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
)

// restartable is an embedded broker that a signal restarts in place: same port, same data
// directory, so everything written before is served again. It gives Watermill's Reconnect test
// (which restarts "the service" by running a command) a Kafka broker to restart: the command
// is `kill -USR1 <this process>`.
type restartable struct {
	t    testing.TB
	port int
	dir  string

	mu sync.Mutex
	b  *embedded.Broker
}

func startRestartable(t testing.TB) *restartable {
	t.Helper()
	r := &restartable{t: t, dir: t.TempDir()}
	b, err := embedded.Start(embedded.Options{DataDir: r.dir})
	require.NoError(t, err)
	r.b = b
	_, port, err := net.SplitHostPort(b.Addrs()[0])
	require.NoError(t, err)
	r.port, _ = strconv.Atoi(port)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-sig:
				r.restart()
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		signal.Stop(sig)
		close(stop)
		<-done
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.b != nil {
			_ = r.b.Close()
		}
	})
	return r
}

func (r *restartable) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// RestartCommand is the command that restarts the broker from outside.
func (r *restartable) RestartCommand() []string {
	return []string{"kill", "-USR1", strconv.Itoa(os.Getpid())}
}

func (r *restartable) restart() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.b != nil {
		_ = r.b.Close()
		r.b = nil
	}
	b, err := embedded.Start(embedded.Options{Port: r.port, DataDir: r.dir})
	if err != nil {
		r.t.Errorf("restart the embedded broker on port %d: %v", r.port, err)
		return
	}
	r.b = b
}

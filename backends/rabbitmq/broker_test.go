package rabbitmq_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// Tests share one vhost of the shared broker per test run (brokertest.RabbitMQRunURL), each
// in topics of its own; fault tests start a private node (brokertest.StartRabbitMQ).
func TestMain(m *testing.M) {
	code := m.Run()
	if err := brokertest.RabbitMQDeleteRunVhost(); err != nil {
		fmt.Fprintln(os.Stderr, "rabbitmq tests:", err)
		code = 1
	}
	os.Exit(code)
}

// testConfig is the default configuration pointed at url, with short reconnect waits.
func testConfig(url string) *rabbitmq.Config {
	cfg := rabbitmq.DefaultConfig()
	cfg.URL = config.Secret(url)
	cfg.Reconnect.InitialInterval = 50 * time.Millisecond
	cfg.Reconnect.MaxInterval = time.Second
	cfg.ConnectionName = "eventbus-test"
	cfg.Consumer.NackDelay = 10 * time.Millisecond
	return cfg
}

func openBackend(t testing.TB, cfg *rabbitmq.Config, opts ...bus.Option) *bus.Bus {
	t.Helper()
	return brokertest.OpenBus(t, rabbitmq.Name, cfg, opts...)
}

func uniqueTopic(prefix string) string { return prefix + "-" + watermill.NewShortUUID() }

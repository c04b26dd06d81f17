package redis_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/internal/testcert"
)

// roundTrip publishes one event to a fresh stream and consumes it through b.
func roundTrip(t *testing.T, b *bus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.Publish(ctx, "secure", bus.Event{ID: "e1", Type: "t", Source: "s", Data: []byte("x")}))
	msgs, err := b.Subscriber.Subscribe(ctx, "secure")
	require.NoError(t, err)
	m := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "e1", m.UUID)
	m.Ack()
}

// A server that only takes TLS connections with a client certificate, whose own certificate
// names redis.test (not 127.0.0.1): the CA, the client pair and the server name all count.
func TestTLSWithClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := testcert.NewCA(t, dir)
	serverCert, serverKey := testcert.NewLeaf(t, dir, "server", ca, caKey, "redis.test")
	clientCert, clientKey := testcert.NewLeaf(t, dir, "client", ca, caKey, "eventbus-client")
	caFile := filepath.Join(dir, "ca.pem")

	tlsFor := func(serverName string) *tls.Config {
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(caFile)
		require.NoError(t, err)
		pool.AppendCertsFromPEM(pem)
		pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
		require.NoError(t, err)
		return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: serverName, MinVersion: tls.VersionTLS12}
	}
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{
		Args: []string{"--port", "0", "--tls-port", "{port}", "--tls-cert-file", serverCert, "--tls-key-file", serverKey,
			"--tls-ca-cert-file", caFile, "--tls-auth-clients", "yes"},
		Client: func(addr string) *goredis.Options {
			return &goredis.Options{Addr: addr, TLSConfig: tlsFor("redis.test")}
		},
	})

	cfg := testConfig(srv.Addr())
	cfg.TLS = config.TLS{Enabled: true, CAFile: caFile, CertFile: clientCert, KeyFile: clientKey, ServerName: "redis.test"}
	require.NoError(t, cfg.Validate())
	b, _ := openBus(t, cfg)
	roundTrip(t, b)

	// Without the server name the certificate does not match 127.0.0.1; without the client
	// pair the server refuses the handshake.
	noName := testConfig(srv.Addr())
	noName.TLS = config.TLS{Enabled: true, CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}
	_, err := bus.OpenConfig(context.Background(), redisbackend.Name, noName, bus.WithLogger(brokertest.Logger()))
	require.ErrorContains(t, err, "certificate")
	noClient := testConfig(srv.Addr())
	noClient.TLS = config.TLS{Enabled: true, CAFile: caFile, ServerName: "redis.test"}
	_, err = bus.OpenConfig(context.Background(), redisbackend.Name, noClient, bus.WithLogger(brokertest.Logger()))
	require.Error(t, err)
}

// An ACL user with a password from the environment; a wrong password is a clear error.
func TestACLUserAndPassword(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{
		Args: []string{"--user", "default", "off", "--user", "lms", "on", ">s3cret", "~*", "&*", "+@all"},
		Client: func(addr string) *goredis.Options {
			return &goredis.Options{Addr: addr, Username: "lms", Password: "s3cret"}
		},
	})
	file, err := config.Parse("eventbus.yaml", []byte("backend: redis\nredis:\n  addrs: ["+srv.Addr()+"]\n  username: lms\n  password: ${REDIS_PASSWORD}\n"))
	require.NoError(t, err)

	good, err := bus.Open(context.Background(), file.WithEnv(func(string) (string, bool) { return "s3cret", true }), bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer good.Close()
	roundTrip(t, good)

	_, err = bus.Open(context.Background(), file.WithEnv(func(string) (string, bool) { return "not-the-pass-9x", true }), bus.WithLogger(brokertest.Logger()))
	require.ErrorIs(t, err, bus.ErrUnauthorized)
	assert.Contains(t, err.Error(), "WRONGPASS")
	assert.NotContains(t, err.Error(), "not-the-pass-9x", "the password is not in the error")
}

// A user the server lets in but not write (ACL without XADD): Publish fails with
// ErrUnauthorized, the server's NOPERM reply in the chain.
func TestACLPermissionRefused(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{
		Args: []string{"--user", "default", "off", "--user", "reader", "on", ">s3cret", "~*", "&*", "+@all", "-xadd"},
		Client: func(addr string) *goredis.Options {
			return &goredis.Options{Addr: addr, Username: "reader", Password: "s3cret"}
		},
	})
	cfg := testConfig(srv.Addr())
	cfg.Username, cfg.Password = "reader", config.Secret("s3cret")
	b, _ := openBus(t, cfg)
	err := b.Publish(context.Background(), "secure", bus.Event{ID: "e1", Type: "t", Source: "s"})
	require.ErrorIs(t, err, bus.ErrUnauthorized)
	assert.NotErrorIs(t, err, bus.ErrUnavailable)
	assert.True(t, goredis.IsPermissionError(err), "go-redis's error stays in the chain: %v", err)
}

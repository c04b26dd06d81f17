package kafka_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/internal/testcert"
)

// TestMutualTLS connects through the tls: block (CA file, client certificate, server name) to a
// broker that requires a client certificate signed by its CA, and round-trips an event. Without
// the client certificate the broker refuses the connection at Open.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := testcert.NewCA(t, dir)
	serverCert, serverKey := testcert.NewLeaf(t, dir, "server", ca, caKey, "kafka.test")
	clientCert, clientKey := testcert.NewLeaf(t, dir, "client", ca, caKey, "lms")
	pair, err := tls.LoadX509KeyPair(serverCert, serverKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}))
	require.NoError(t, err)
	defer cluster.Close()

	cfg := kafka.DefaultConfig()
	cfg.Brokers = cluster.ListenAddrs()
	cfg.TLS = config.TLS{Enabled: true, CAFile: filepath.Join(dir, "ca.pem"), CertFile: clientCert, KeyFile: clientKey, ServerName: "kafka.test"}
	require.NoError(t, cfg.Validate())
	roundTrip(t, cfg)

	noClientCert := *cfg
	noClientCert.TLS.CertFile, noClientCert.TLS.KeyFile = "", ""
	_, err = bus.OpenConfig(context.Background(), "kafka", &noClientCert, bus.WithLogger(brokertest.Logger()))
	require.Error(t, err, "the broker requires a client certificate")
}

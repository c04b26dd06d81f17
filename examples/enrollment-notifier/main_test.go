package main_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/router"
)

// TestServesEndpointsOnEmbeddedBroker builds the service and runs it as a process against the
// in-process Kafka broker, configured by the environment variables the manifests set: it
// becomes ready, serves metrics Prometheus can parse, and exits 0 on SIGTERM.
func TestServesEndpointsOnEmbeddedBroker(t *testing.T) {
	bin := brokertest.BuildBinary(t, "enrollment-notifier")
	addr := brokertest.ClosedPort(t)
	cfgPath := filepath.Join(t.TempDir(), "eventbus.yaml")
	require.NoError(t, os.WriteFile(cfgPath, fmt.Appendf(nil, `backend: kafka
kafka: {embedded: true, consumer_group: enrollment-notifier}
router:
  close_timeout: 5s
  http: {addr: %q}
  log: {format: json}
`, addr), 0o600))

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "EVENTBUS_CONFIG="+cfgPath, "EVENTBUS_TOPIC=enrollments")
	stderr := &brokertest.SyncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})

	base := "http://" + addr
	get := func(path string) (int, []byte) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	require.Eventually(t, func() bool { code, _ := get(router.PathReadyz); return code == http.StatusOK }, 30*time.Second, 50*time.Millisecond)
	code, _ := get(router.PathHealthz)
	assert.Equal(t, http.StatusOK, code)
	code, body := get(router.PathMetrics)
	require.Equal(t, http.StatusOK, code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err)
	require.Contains(t, mfs, router.MetricLag)
	for _, m := range mfs[router.MetricLag].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		assert.Equal(t, "enrollments", labels["topic"])
		assert.Equal(t, "enrollment-notifier", labels["group"])
	}
	assert.Contains(t, stderr.String(), `"msg":"consuming"`, "JSON logs, by router.log.format")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		assert.NoError(t, err, "exit 0 after a drain")
		done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20s of SIGTERM")
	}
}

// TestShippedConfigIsValid: the eventbus.yaml beside the example (go run with -config) loads.
func TestShippedConfigIsValid(t *testing.T) {
	cfg, err := config.Load("eventbus.yaml")
	require.NoError(t, err)
	_, err = bus.BackendConfig(cfg)
	require.NoError(t, err)
	rc, err := router.LoadConfig(cfg)
	require.NoError(t, err)
	assert.Equal(t, router.DefaultHTTPAddr, rc.HTTP.Addr)
}

// Package deploy_test checks the Kubernetes manifests in deploy/ against the binary they run,
// examples/enrollment-notifier: its flags, environment variables, HTTP port and paths, its
// config file, and the drain timeout.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	_ "github.com/eventbus-go/eventbus/backends/kafka"
	_ "github.com/eventbus-go/eventbus/backends/rabbitmq"
	_ "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/router"
)

// secretExamples stand in for values a Deployment takes from Secrets.
var secretExamples = map[string]string{"RABBITMQ_URL": "amqp://notifier:secret@rabbitmq:5672/"}

// obj is one Kubernetes object, decoded loosely.
type obj map[string]any

func (o obj) get(path ...any) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

func (o obj) str(path ...any) string { s, _ := o.get(path...).(string); return s }

func load(t *testing.T, path string) []obj {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []obj
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err, path)
		if o != nil {
			out = append(out, obj(o))
		}
	}
}

// binaryUsage builds the example and returns its -h output: the flags and environment
// variables it reads.
func binaryUsage(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "enrollment-notifier")
	out, err := exec.Command("go", "build", "-o", bin, "../examples/enrollment-notifier").CombinedOutput()
	require.NoError(t, err, "%s", out)
	usage, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits 0 or 2 by Go version
	require.Contains(t, string(usage), "Usage")
	return string(usage)
}

// flagNames are the flags in a Go flag usage text.
func flagNames(usage string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(usage))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "  -") {
			names[strings.Fields(strings.TrimPrefix(line, "  -"))[0]] = true
		}
	}
	return names
}

func TestManifestsMatchTheBinary(t *testing.T) {
	usage := binaryUsage(t)
	flags := flagNames(usage)
	require.True(t, flags["config"] && flags["topic"], "flags of the binary: %v", flags)

	for _, backend := range []string{"kafka", "redis", "rabbitmq"} {
		t.Run(backend, func(t *testing.T) {
			objs := load(t, filepath.Join(backend, "enrollment-notifier.yaml"))
			byKind := map[string][]obj{}
			for _, o := range objs {
				byKind[o.str("kind")] = append(byKind[o.str("kind")], o)
			}
			require.Len(t, byKind["ConfigMap"], 1)
			require.NotEmpty(t, byKind["Deployment"])
			require.Len(t, byKind["PodDisruptionBudget"], len(byKind["Deployment"]))
			require.Len(t, byKind["ScaledObject"], len(byKind["Deployment"]))
			cm := byKind["ConfigMap"][0]

			topics := map[string]bool{}
			for _, d := range byKind["Deployment"] {
				name := d.str("metadata", "name")
				spec := obj(d.get("spec", "template", "spec").(map[string]any))
				c := obj(spec.get("containers", 0).(map[string]any))

				// Environment: each variable the binary documents, and every ${VAR} of the
				// config file, is set by the Deployment.
				env := map[string]string{}
				for _, e := range c.get("env").([]any) {
					eo := obj(e.(map[string]any))
					v := eo.str("value")
					if v == "" { // secretKeyRef, fieldRef: a value of the right form
						v = secretExamples[eo.str("name")]
						if v == "" {
							v = "from-" + eo.str("name")
						}
					}
					env[eo.str("name")] = v
				}
				topic := env["EVENTBUS_TOPIC"]
				require.NotEmpty(t, topic, "%s sets EVENTBUS_TOPIC", name)
				assert.Contains(t, usage, "env EVENTBUS_TOPIC", "the binary reads EVENTBUS_TOPIC")
				assert.False(t, topics[topic], "one Deployment per topic: %s twice", topic)
				topics[topic] = true

				// Flags: each is one the binary has; --config points into the ConfigMap's mount.
				var cfgPath string
				for _, a := range c.get("args").([]any) {
					arg := a.(string)
					require.True(t, strings.HasPrefix(arg, "--") || strings.HasPrefix(arg, "-"), arg)
					k, v, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
					assert.True(t, flags[k], "%s: flag %s is not one of the binary's %v", name, k, flags)
					if k == "config" {
						cfgPath = v
					}
				}
				require.NotEmpty(t, cfgPath, "%s passes --config", name)
				mount := obj(c.get("volumeMounts", 0).(map[string]any))
				vol := obj(spec.get("volumes", 0).(map[string]any))
				assert.Equal(t, mount.str("name"), vol.str("name"))
				assert.Equal(t, cm.str("metadata", "name"), vol.str("configMap", "name"))
				key, err := filepath.Rel(mount.str("mountPath"), cfgPath)
				require.NoError(t, err)
				file, ok := cm.get("data", key).(string)
				require.True(t, ok, "ConfigMap has no key %s for --config=%s", key, cfgPath)

				// The config file is valid for the binary, with the Deployment's environment.
				cfg, err := config.Parse(cfgPath, []byte(file))
				require.NoError(t, err)
				cfg = cfg.WithEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
				assert.Equal(t, backend, cfg.Backend)
				_, err = bus.BackendConfig(cfg)
				require.NoError(t, err, "the %s section", backend)
				rc, err := router.LoadConfig(cfg)
				require.NoError(t, err)

				// HTTP: the container port is router.http.addr's; probes hit the runner's paths.
				_, port, err := net.SplitHostPort(rc.HTTP.Addr)
				require.NoError(t, err)
				p := obj(c.get("ports", 0).(map[string]any))
				assert.Equal(t, port, fmt.Sprint(p.get("containerPort")))
				assert.Equal(t, router.PathHealthz, c.str("livenessProbe", "httpGet", "path"))
				assert.Equal(t, router.PathReadyz, c.str("readinessProbe", "httpGet", "path"))
				for _, probe := range []string{"livenessProbe", "readinessProbe"} {
					pp := fmt.Sprint(c.get(probe, "httpGet", "port"))
					assert.True(t, pp == p.str("name") || pp == port, "%s port %s", probe, pp)
				}
				if ann := d.str("spec", "template", "metadata", "annotations", "prometheus.io/port"); ann != "" {
					assert.Equal(t, port, ann)
					assert.Equal(t, router.PathMetrics, d.str("spec", "template", "metadata", "annotations", "prometheus.io/path"))
				}

				// The drain ends before SIGKILL.
				grace, ok := spec.get("terminationGracePeriodSeconds").(int)
				require.True(t, ok, "%s sets terminationGracePeriodSeconds", name)
				assert.Greater(t, grace, int(rc.CloseTimeout.Seconds()), "terminationGracePeriodSeconds must exceed router.close_timeout")

				// PodDisruptionBudget and ScaledObject target this Deployment.
				labels := d.get("spec", "template", "metadata", "labels").(map[string]any)
				var pdbFound bool
				for _, pdb := range byKind["PodDisruptionBudget"] {
					sel := pdb.get("spec", "selector", "matchLabels").(map[string]any)
					match := true
					for k, v := range sel {
						match = match && labels[k] == v
					}
					pdbFound = pdbFound || match
				}
				assert.True(t, pdbFound, "a PodDisruptionBudget selects %s", name)
				var so obj
				for _, s := range byKind["ScaledObject"] {
					if s.str("spec", "scaleTargetRef", "name") == name {
						so = s
					}
				}
				require.NotNil(t, so, "a ScaledObject scales %s", name)
				checkTrigger(t, backend, so, topic)
			}
		})
	}
}

// checkTrigger: the ScaledObject scales on the lag of the group and topic the service
// consumes, with the backend's KEDA scaler, not on CPU or memory.
func checkTrigger(t *testing.T, backend string, so obj, topic string) {
	t.Helper()
	triggers := so.get("spec", "triggers").([]any)
	require.Len(t, triggers, 1)
	tr := obj(triggers[0].(map[string]any))
	var section struct {
		ConsumerGroup string `yaml:"consumer_group"`
	}
	var raw map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(mustConfigMapText(t, backend)), &raw))
	sec := raw[backend].(map[string]any)
	section.ConsumerGroup, _ = sec["consumer_group"].(string)
	require.NotEmpty(t, section.ConsumerGroup)
	md := func(k string) string { return tr.str("metadata", k) }
	switch backend {
	case "kafka":
		assert.Equal(t, "kafka", tr.str("type"))
		assert.Equal(t, topic, md("topic"))
		assert.Equal(t, section.ConsumerGroup, md("consumerGroup"))
		brokers := sec["brokers"].([]any)
		var want []string
		for _, b := range brokers {
			want = append(want, b.(string))
		}
		assert.Equal(t, strings.Join(want, ","), md("bootstrapServers"))
		_, err := strconv.Atoi(md("lagThreshold"))
		assert.NoError(t, err)
	case "redis":
		assert.Equal(t, "redis-streams", tr.str("type"))
		assert.Equal(t, topic, md("stream"))
		assert.Equal(t, section.ConsumerGroup, md("consumerGroup"))
		assert.Equal(t, sec["addrs"].([]any)[0], md("address"))
		assert.NotEmpty(t, md("lagCount"))
	case "rabbitmq":
		assert.Equal(t, "rabbitmq", tr.str("type"))
		// The group's queue, as rabbitmq.queue.name's default "{group}.{topic}" names it.
		assert.Equal(t, section.ConsumerGroup+"."+topic, md("queueName"))
		assert.Equal(t, "QueueLength", md("mode"))
	}
}

func mustConfigMapText(t *testing.T, backend string) string {
	t.Helper()
	for _, o := range load(t, filepath.Join(backend, "enrollment-notifier.yaml")) {
		if o.str("kind") == "ConfigMap" {
			return o.str("data", "eventbus.yaml")
		}
	}
	t.Fatalf("no ConfigMap in %s", backend)
	return ""
}

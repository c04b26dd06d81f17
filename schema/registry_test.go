package schema_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/schema"
	"github.com/eventbus-go/eventbus/schema/registrytest"
)

const recordV1 = `{"type":"record","name":"R","namespace":"t.v1","fields":[{"name":"a","type":"string"}]}`

// v2 adds a field with a default: backward compatible.
const recordV2 = `{"type":"record","name":"R","namespace":"t.v1","fields":[{"name":"a","type":"string"},{"name":"b","type":"long","default":0}]}`

// v3 adds a field without a default: not backward compatible.
const recordV3 = `{"type":"record","name":"R","namespace":"t.v1","fields":[{"name":"a","type":"string"},{"name":"c","type":"long"}]}`

func TestRegistryClientAgainstEmbeddedRegistry(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	c, err := schema.NewRegistry(reg.URL(), schema.RegistryOptions{})
	require.NoError(t, err)

	_, err = c.Lookup(ctx, "s-value", recordV1)
	require.ErrorIs(t, err, schema.ErrNotRegistered)
	id1, err := c.Register(ctx, "s-value", recordV1)
	require.NoError(t, err)
	again, err := c.Register(ctx, "other-value", recordV1)
	require.NoError(t, err)
	assert.Equal(t, id1, again, "one id per schema across subjects")
	id2, err := c.Register(ctx, "s-value", recordV2)
	require.NoError(t, err)
	assert.NotEqual(t, id1, id2)

	_, err = c.Register(ctx, "s-value", recordV3)
	require.Error(t, err, "the registry refuses an incompatible version")
	assert.Contains(t, err.Error(), "incompatible")

	text, err := schema.NewRegistry(reg.URL(), schema.RegistryOptions{}) // a fresh client: no cache
	require.NoError(t, err)
	got, err := text.SchemaByID(ctx, id2)
	require.NoError(t, err)
	assert.JSONEq(t, recordV2, got)
	latest, err := text.Latest(ctx, "s-value")
	require.NoError(t, err)
	assert.Equal(t, 2, latest.Version)
	subjects, err := text.Subjects(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"other-value", "s-value"}, subjects)
}

// The client sends basic auth and speaks TLS; a refused credential is ErrUnauthorized.
func TestRegistryClientBasicAuthAndTLS(t *testing.T) {
	reg := startRegistry(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "key" || p != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error_code":401,"message":"Unauthorized"}`))
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsCfg.RootCAs = roots

	ctx := context.Background()
	good, err := schema.NewRegistry(srv.URL, schema.RegistryOptions{Username: "key", Password: "secret", TLS: tlsCfg})
	require.NoError(t, err)
	_, err = good.Register(ctx, "s-value", recordV1)
	require.NoError(t, err)

	bad, err := schema.NewRegistry(srv.URL, schema.RegistryOptions{Username: "key", Password: "wrong", TLS: tlsCfg})
	require.NoError(t, err)
	_, err = bad.Register(ctx, "s-value", recordV1)
	require.ErrorIs(t, err, bus.ErrUnauthorized)
	assert.NotContains(t, err.Error(), "wrong", "the password is never in an error")

	untrusting, err := schema.NewRegistry(srv.URL, schema.RegistryOptions{Username: "key", Password: "secret"})
	require.NoError(t, err)
	_, err = untrusting.Register(ctx, "s-value", recordV1)
	require.ErrorIs(t, err, bus.ErrUnavailable, "an unknown certificate authority fails the handshake")
}

func TestEmbeddedRegistryCompatibilityLevels(t *testing.T) {
	reg := startRegistry(t)
	reg.SetCompatibility(registrytest.None)
	c, err := schema.NewRegistry(reg.URL(), schema.RegistryOptions{})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = c.Register(ctx, "s", recordV1)
	require.NoError(t, err)
	_, err = c.Register(ctx, "s", recordV3)
	require.NoError(t, err, "NONE accepts anything")
}

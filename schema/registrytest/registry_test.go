package registrytest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/schema/registrytest"
)

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/vnd.schemaregistry.v1+json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// The registry answers with Confluent's status codes and error codes, which clients branch on.
func TestRegistrySpeaksConfluentsAPI(t *testing.T) {
	reg, err := registrytest.Start()
	require.NoError(t, err)
	defer reg.Close()
	subject := reg.URL() + "/subjects/" + "lms-org.openedx.x.v1.CloudEvent"

	code, out := post(t, subject, `{"schema": "\"string\""}`)
	assert.Equal(t, http.StatusNotFound, code)
	assert.EqualValues(t, 40401, out["error_code"])

	code, out = post(t, subject+"/versions", `{"schema": "{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}"}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.EqualValues(t, 1, out["id"])

	code, out = post(t, subject+"/versions", `{"schema": "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"}`)
	assert.Equal(t, http.StatusConflict, code, "BACKWARD refuses a field without a default")
	assert.Contains(t, out["message"], "reader field a is missing in writer schema")

	code, out = post(t, subject+"/versions", `{"schema": "not json"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	assert.EqualValues(t, 42201, out["error_code"])

	code, out = post(t, reg.URL()+"/compatibility/subjects/lms-org.openedx.x.v1.CloudEvent/versions/latest",
		`{"schema": "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\",\"default\":0}]}"}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.Equal(t, true, out["is_compatible"])

	resp, err := http.Get(reg.URL() + "/schemas/ids/7")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

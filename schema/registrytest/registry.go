// Package registrytest is an embedded schema registry: the subset of the Confluent schema
// registry's REST API that package schema's client uses (subjects, versions, ids, lookups,
// compatibility), served over HTTP on a loopback port, in memory. It is for tests and
// `eventbus dev`, as backends/kafka/embedded is for the broker; nothing is persisted.
//
// Schema ids are global: the same schema (by Avro parsing canonical form) gets the same id under
// every subject, as in Confluent's registry. Registering under a subject checks compatibility
// with the subject's latest version at the registry's level (BACKWARD by default).
package registrytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hamba/avro/v2"
)

// Compatibility levels, as Confluent names them.
const (
	None     = "NONE"
	Backward = "BACKWARD"
	Forward  = "FORWARD"
	Full     = "FULL"
)

// Registry is a running embedded registry.
type Registry struct {
	srv *http.Server
	ln  net.Listener
	url string

	mu            sync.Mutex
	compatibility string
	schemas       []string       // id-1 -> schema text as first registered
	idOfCanonical map[string]int // canonical form -> id
	subjects      map[string][]int
	done          chan struct{}
}

// Start serves a new, empty registry on 127.0.0.1 at a free port. Close stops it.
func Start() (*Registry, error) { return StartAt("127.0.0.1:0") }

// StartAt serves a new, empty registry on addr (host:port).
func StartAt(addr string) (*Registry, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("schema registry: listen on %s: %w", addr, err)
	}
	r := &Registry{
		ln: ln, url: "http://" + ln.Addr().String(),
		compatibility: Backward,
		idOfCanonical: map[string]int{},
		subjects:      map[string][]int{},
		done:          make(chan struct{}),
	}
	r.srv = &http.Server{Handler: r}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln)
	}()
	return r, nil
}

// URL is the registry's base URL, e.g. http://127.0.0.1:40123.
func (r *Registry) URL() string { return r.url }

// Close stops the server and waits for it.
func (r *Registry) Close() error {
	err := r.srv.Close()
	<-r.done
	return err
}

// SetCompatibility sets the registry-wide compatibility level (None, Backward, Forward, Full).
func (r *Registry) SetCompatibility(level string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.compatibility = level
}

// Subjects returns the registered subjects, sorted.
func (r *Registry) Subjects() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.subjects))
	for s := range r.subjects {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

type apiError struct {
	status int
	Code   int    `json:"error_code"`
	Msg    string `json:"message"`
}

func (e *apiError) Error() string { return e.Msg }

func fail(status, code int, format string, args ...any) *apiError {
	return &apiError{status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP routes the API.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	out, err := r.route(req)
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = fail(http.StatusInternalServerError, 50001, "%v", err)
		}
		w.WriteHeader(ae.status)
		_ = json.NewEncoder(w).Encode(ae)
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (r *Registry) route(req *http.Request) (any, error) {
	parts := strings.Split(strings.Trim(req.URL.EscapedPath(), "/"), "/")
	for i, p := range parts {
		u, err := unescape(p)
		if err != nil {
			return nil, fail(http.StatusBadRequest, 400, "bad path segment %q", p)
		}
		parts[i] = u
	}
	get, post := req.Method == http.MethodGet, req.Method == http.MethodPost
	switch {
	case get && len(parts) == 1 && parts[0] == "subjects":
		return r.Subjects(), nil
	case get && len(parts) == 3 && parts[0] == "schemas" && parts[1] == "ids":
		return r.schemaByID(parts[2])
	case post && len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		return r.register(parts[1], req)
	case post && len(parts) == 2 && parts[0] == "subjects":
		return r.lookup(parts[1], req)
	case get && len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		return r.versions(parts[1])
	case get && len(parts) == 4 && parts[0] == "subjects" && parts[2] == "versions":
		return r.version(parts[1], parts[3])
	case post && len(parts) == 5 && parts[0] == "compatibility" && parts[1] == "subjects" && parts[3] == "versions":
		return r.testCompatibility(parts[2], parts[4], req)
	case get && len(parts) == 1 && parts[0] == "config":
		r.mu.Lock()
		defer r.mu.Unlock()
		return map[string]string{"compatibilityLevel": r.compatibility}, nil
	case req.Method == http.MethodPut && len(parts) == 1 && parts[0] == "config":
		var body struct {
			Compatibility string `json:"compatibility"`
		}
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			return nil, fail(http.StatusUnprocessableEntity, 42203, "invalid config body: %v", err)
		}
		switch body.Compatibility {
		case None, Backward, Forward, Full:
		default:
			return nil, fail(http.StatusUnprocessableEntity, 42203, "compatibility %q: want NONE, BACKWARD, FORWARD or FULL", body.Compatibility)
		}
		r.SetCompatibility(body.Compatibility)
		return body, nil
	}
	return nil, fail(http.StatusNotFound, 404, "%s %s is not served by the embedded registry", req.Method, req.URL.Path)
}

func unescape(s string) (string, error) { return url.PathUnescape(s) }

// readSchema reads {"schema": "..."} and parses it.
func readSchema(req *http.Request) (string, avro.Schema, error) {
	var body struct {
		Schema     string `json:"schema"`
		SchemaType string `json:"schemaType"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		return "", nil, fail(http.StatusUnprocessableEntity, 42201, "invalid request body: %v", err)
	}
	if body.SchemaType != "" && body.SchemaType != "AVRO" {
		return "", nil, fail(http.StatusUnprocessableEntity, 42201, "schemaType %s: the embedded registry holds Avro only", body.SchemaType)
	}
	s, err := avro.ParseWithCache(body.Schema, "", &avro.SchemaCache{})
	if err != nil {
		return "", nil, fail(http.StatusUnprocessableEntity, 42201, "Invalid schema: %v", err)
	}
	return body.Schema, s, nil
}

func (r *Registry) register(subject string, req *http.Request) (any, error) {
	text, s, err := readSchema(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	canon := s.String()
	ids := r.subjects[subject]
	if id, ok := r.idOfCanonical[canon]; ok {
		for _, have := range ids {
			if have == id {
				return map[string]int{"id": id}, nil
			}
		}
	}
	if len(ids) > 0 {
		latest, _ := avro.ParseWithCache(r.schemas[ids[len(ids)-1]-1], "", &avro.SchemaCache{})
		if err := compatible(r.compatibility, s, latest); err != nil {
			return nil, fail(http.StatusConflict, 409, "Schema being registered is incompatible with an earlier schema for subject %q (%s): %v", subject, r.compatibility, err)
		}
	}
	id, ok := r.idOfCanonical[canon]
	if !ok {
		r.schemas = append(r.schemas, text)
		id = len(r.schemas)
		r.idOfCanonical[canon] = id
	}
	r.subjects[subject] = append(ids, id)
	return map[string]int{"id": id}, nil
}

// compatible checks newer against older at level: BACKWARD means data written with older reads
// with newer, FORWARD the opposite, FULL both.
func compatible(level string, newer, older avro.Schema) error {
	c := avro.NewSchemaCompatibility()
	if level == Backward || level == Full {
		if err := c.Compatible(newer, older); err != nil {
			return fmt.Errorf("new schema cannot read data written with the latest: %w", err)
		}
	}
	if level == Forward || level == Full {
		if err := c.Compatible(older, newer); err != nil {
			return fmt.Errorf("latest schema cannot read data written with the new one: %w", err)
		}
	}
	return nil
}

func (r *Registry) lookup(subject string, req *http.Request) (any, error) {
	_, s, err := readSchema(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, ok := r.subjects[subject]
	if !ok {
		return nil, fail(http.StatusNotFound, 40401, "Subject '%s' not found.", subject)
	}
	id := r.idOfCanonical[s.String()]
	for i, have := range ids {
		if have == id {
			return r.subjectVersion(subject, i+1), nil
		}
	}
	return nil, fail(http.StatusNotFound, 40403, "Schema not found under subject '%s'.", subject)
}

func (r *Registry) subjectVersion(subject string, version int) map[string]any {
	id := r.subjects[subject][version-1]
	return map[string]any{"subject": subject, "version": version, "id": id, "schema": r.schemas[id-1]}
}

func (r *Registry) schemaByID(raw string) (any, error) {
	id, err := strconv.Atoi(raw)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || id < 1 || id > len(r.schemas) {
		return nil, fail(http.StatusNotFound, 40403, "Schema %s not found", raw)
	}
	return map[string]string{"schema": r.schemas[id-1]}, nil
}

func (r *Registry) versions(subject string) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, ok := r.subjects[subject]
	if !ok {
		return nil, fail(http.StatusNotFound, 40401, "Subject '%s' not found.", subject)
	}
	out := make([]int, len(ids))
	for i := range ids {
		out[i] = i + 1
	}
	return out, nil
}

func (r *Registry) version(subject, raw string) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, ok := r.subjects[subject]
	if !ok {
		return nil, fail(http.StatusNotFound, 40401, "Subject '%s' not found.", subject)
	}
	v := len(ids)
	if raw != "latest" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > len(ids) {
			return nil, fail(http.StatusNotFound, 40402, "Version %s not found.", raw)
		}
		v = n
	}
	return r.subjectVersion(subject, v), nil
}

func (r *Registry) testCompatibility(subject, version string, req *http.Request) (any, error) {
	_, s, err := readSchema(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, ok := r.subjects[subject]
	if !ok || len(ids) == 0 {
		return map[string]bool{"is_compatible": true}, nil
	}
	idx := len(ids) - 1
	if version != "latest" {
		n, err := strconv.Atoi(version)
		if err != nil || n < 1 || n > len(ids) {
			return nil, fail(http.StatusNotFound, 40402, "Version %s not found.", version)
		}
		idx = n - 1
	}
	older, _ := avro.ParseWithCache(r.schemas[ids[idx]-1], "", &avro.SchemaCache{})
	if err := compatible(r.compatibility, s, older); err != nil {
		return map[string]any{"is_compatible": false, "messages": []string{err.Error()}}, nil
	}
	return map[string]bool{"is_compatible": true}, nil
}

package schema

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/eventbus-go/eventbus/bus"
)

// ErrNotRegistered is wrapped by Registry.Lookup's error when the subject has no such schema.
var ErrNotRegistered = errors.New("schema not registered")

// registryMediaType is the Confluent schema registry's API media type.
const registryMediaType = "application/vnd.schemaregistry.v1+json"

// Registry is a client for the subset of the Confluent schema registry API that eventbus uses:
// register and look up a schema under a subject, fetch a schema by id, list subjects and their
// versions, and test compatibility. Ids and schemas are cached, so a publisher asks the
// registry once per subject and schema, and a consumer once per id. Safe for concurrent use.
type Registry struct {
	base     *url.URL
	user     string
	password string
	client   *http.Client

	mu   sync.Mutex
	ids  map[string]int // subject + "\x00" + schema text -> id
	byID map[int]string // id -> schema text
}

// RegistryOptions configure a Registry client.
type RegistryOptions struct {
	// Username and Password, when Username is set, are sent as HTTP basic auth (Confluent
	// Cloud's API key and secret).
	Username, Password string
	// TLS is the client's TLS configuration for an https URL; nil uses the system's roots.
	TLS *tls.Config
	// Timeout bounds each request. Default: 10s.
	Timeout time.Duration
}

// NewRegistry returns a client for the registry at rawURL (http or https).
func NewRegistry(rawURL string, o RegistryOptions) (*Registry, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("schema registry url %q: want http://host:port or https://host:port", rawURL)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = o.TLS
	return &Registry{
		base: u, user: o.Username, password: o.Password,
		client: &http.Client{Transport: tr, Timeout: o.Timeout},
		ids:    map[string]int{}, byID: map[int]string{},
	}, nil
}

// URL is the registry's address.
func (r *Registry) URL() string { return r.base.String() }

// Register registers schema under subject (a no-op for the registry when it is already there)
// and returns its id. A schema the subject's compatibility setting refuses is an error that
// carries the registry's message.
func (r *Registry) Register(ctx context.Context, subject, schema string) (int, error) {
	return r.cachedID(ctx, subject, schema, "/versions")
}

// Lookup returns the id of schema under subject without registering it; an error wrapping
// ErrNotRegistered when the subject does not hold it.
func (r *Registry) Lookup(ctx context.Context, subject, schema string) (int, error) {
	return r.cachedID(ctx, subject, schema, "")
}

func (r *Registry) cachedID(ctx context.Context, subject, schema, suffix string) (int, error) {
	key := subject + "\x00" + schema
	r.mu.Lock()
	id, ok := r.ids[key]
	r.mu.Unlock()
	if ok {
		return id, nil
	}
	var resp struct {
		ID int `json:"id"`
	}
	if err := r.do(ctx, http.MethodPost, "/subjects/"+url.PathEscape(subject)+suffix, map[string]string{"schema": schema}, &resp); err != nil {
		return 0, fmt.Errorf("schema registry %s: subject %s: %w", r.base.Redacted(), subject, err)
	}
	r.mu.Lock()
	r.ids[key] = resp.ID
	r.byID[resp.ID] = schema
	r.mu.Unlock()
	return resp.ID, nil
}

// SchemaByID returns the schema registered with id.
func (r *Registry) SchemaByID(ctx context.Context, id int) (string, error) {
	r.mu.Lock()
	s, ok := r.byID[id]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	var resp struct {
		Schema string `json:"schema"`
	}
	if err := r.do(ctx, http.MethodGet, fmt.Sprintf("/schemas/ids/%d", id), nil, &resp); err != nil {
		return "", fmt.Errorf("schema registry %s: schema id %d: %w", r.base.Redacted(), id, err)
	}
	r.mu.Lock()
	r.byID[id] = resp.Schema
	r.mu.Unlock()
	return resp.Schema, nil
}

// Subjects lists the registry's subjects.
func (r *Registry) Subjects(ctx context.Context) ([]string, error) {
	var out []string
	if err := r.do(ctx, http.MethodGet, "/subjects", nil, &out); err != nil {
		return nil, fmt.Errorf("schema registry %s: list subjects: %w", r.base.Redacted(), err)
	}
	return out, nil
}

// SubjectVersion is one registered version of a subject.
type SubjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Schema  string `json:"schema"`
}

// Latest returns the newest version registered under subject.
func (r *Registry) Latest(ctx context.Context, subject string) (SubjectVersion, error) {
	var out SubjectVersion
	if err := r.do(ctx, http.MethodGet, "/subjects/"+url.PathEscape(subject)+"/versions/latest", nil, &out); err != nil {
		return out, fmt.Errorf("schema registry %s: subject %s: %w", r.base.Redacted(), subject, err)
	}
	return out, nil
}

// registryError is the registry's error body.
type registryError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func (r *Registry) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	// path is already escaped (url.PathEscape on the subject), so it is appended as text.
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(r.base.String(), "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", registryMediaType)
	if body != nil {
		req.Header.Set("Content-Type", registryMediaType)
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.password)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", bus.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%w: read response: %w", bus.ErrUnavailable, err)
	}
	if resp.StatusCode/100 != 2 {
		var re registryError
		_ = json.Unmarshal(data, &re)
		msg := re.Message
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%s %s: HTTP %d: %s: %w", method, path, resp.StatusCode, msg, bus.ErrUnauthorized)
		case resp.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%s %s: HTTP %d (error %d): %s: %w", method, path, resp.StatusCode, re.Code, msg, ErrNotRegistered)
		case resp.StatusCode >= 500:
			return fmt.Errorf("%s %s: HTTP %d: %s: %w", method, path, resp.StatusCode, msg, bus.ErrUnavailable)
		}
		return fmt.Errorf("%s %s: HTTP %d (error %d): %s", method, path, resp.StatusCode, re.Code, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: response is not the registry's JSON: %w", method, path, err)
		}
	}
	return nil
}

// Registered is one schema registered by RegisterCatalog.
type Registered struct {
	Subject string
	ID      int
}

// RegisterCatalog registers, for topic, the newest schema of each event type in c under Open
// edX's value subject and the key schema under its key subject, as the first publish in
// openedx mode would; for a registry where auto-registration is off.
func RegisterCatalog(ctx context.Context, c *Catalog, reg *Registry, topic string) ([]Registered, error) {
	var out []Registered
	for _, t := range c.Types() {
		v, _ := c.Latest(t)
		subject := ValueSubject(topic, v.Schema)
		id, err := reg.Register(ctx, subject, v.Text)
		if err != nil {
			return out, err
		}
		out = append(out, Registered{Subject: subject, ID: id})
	}
	id, err := reg.Register(ctx, KeySubject(topic), keySchemaText)
	if err != nil {
		return out, err
	}
	return append(out, Registered{Subject: KeySubject(topic), ID: id}), nil
}

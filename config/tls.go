package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS is the tls: block every backend section shares.
type TLS struct {
	// Enabled turns TLS on. Default: false (a rabbitmq amqps:// URL turns it on too, with the
	// system's CAs). The other settings apply only when Enabled is true; given while it is false
	// they are a configuration error, not silently ignored.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of CAs to trust instead of the system pool. Default: system pool.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for mutual TLS. Give both or
	// neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked against the server's certificate. Default: the host
	// dialled.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate checks. For tests only; never in production.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Validate checks that the files named exist and the client pair is complete. With Enabled
// false, any other setting is an error: it would be ignored, and a file that names a CA or a
// client certificate reads as if the connection were encrypted when it is not.
func (t *TLS) Validate() error {
	var errs []error
	if !t.Enabled {
		for _, f := range []struct {
			path string
			set  bool
		}{
			{"ca_file", t.CAFile != ""}, {"cert_file", t.CertFile != ""}, {"key_file", t.KeyFile != ""},
			{"server_name", t.ServerName != ""}, {"insecure_skip_verify", t.InsecureSkipVerify},
		} {
			if f.set {
				errs = append(errs, Invalid(f.path, "is set but tls.enabled is false, so it would be ignored: set enabled: true or remove it"))
			}
		}
		return errors.Join(errs...)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, Invalid("cert_file", "cert_file and key_file must be given together"))
	}
	for _, f := range []struct{ path, file string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.file == "" {
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			errs = append(errs, Invalid(f.path, "cannot read %s: %v", f.file, errors.Unwrap(err)))
		}
	}
	return errors.Join(errs...)
}

// Build returns the *tls.Config described, or nil when TLS is off.
func (t *TLS) Build() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

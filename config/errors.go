package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error that reports a problem in the configuration, so callers
// can tell bad input (exit code 2, fix the file) from a broker that cannot be reached.
var ErrInvalid = errors.New("invalid configuration")

// Error is one problem in the configuration, located in the file.
type Error struct {
	File string // file name as given to Load; "" for a configuration built in code
	Line int    // 1-based line of the offending key or value; 0 when the key is absent
	Path string // dotted key path from the document root, e.g. "kafka.sasl.password"
	Msg  string // what is wrong and, where possible, how to fix it
	// Err is the underlying error, when the problem came from one (an unknown backend is
	// bus.ErrUnknownBackend); errors.Is and errors.As see it. May be nil.
	Err error
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Error formats the problem as "file:line: key.path: message", leaving out the parts it lacks.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true for every located problem.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// FieldError is a problem found by a section's Validate method. Path is relative to the section
// ("sasl.password"); the loader turns it into an *Error with the file, line and full path.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Is makes errors.Is(err, ErrInvalid) true for field errors too.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns a *FieldError for the value at path (relative to the section being validated).
// Validate methods return it, alone or several joined with errors.Join.
func Invalid(path, format string, args ...any) error {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Problems returns every *Error inside err (which may be a join of several), in order.
func Problems(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		walk(errors.Unwrap(err))
	}
	walk(err)
	return out
}

// fieldErrors flattens what a Validate method returned into field errors; an error that is not a
// *FieldError is kept with an empty path so that nothing a validator says is dropped.
func fieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		var fe *FieldError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &fe) {
			out = append(out, fe)
			return
		}
		out = append(out, &FieldError{Msg: err.Error()})
	}
	walk(err)
	return out
}

func joinPath(parent, child string) string {
	switch {
	case parent == "":
		return child
	case child == "":
		return parent
	case strings.HasPrefix(child, "["):
		return parent + child
	default:
		return parent + "." + child
	}
}

// Nest prefixes the paths of the field errors in err with prefix, for a Validate method that
// delegates to a nested block's Validate: config.Nest("tls", c.TLS.Validate()).
func Nest(prefix string, err error) error {
	if err == nil {
		return nil
	}
	fes := fieldErrors(err)
	out := make([]error, len(fes))
	for i, fe := range fes {
		out[i] = &FieldError{Path: joinPath(prefix, fe.Path), Msg: fe.Msg}
	}
	return errors.Join(out...)
}

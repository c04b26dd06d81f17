package config

import (
	"fmt"
	"os"
	"strings"
)

// expand replaces ${VAR}, ${VAR:-default} and ${file:PATH} in s. "$$" stands for a literal "$".
//
//   - ${VAR} is the variable's value; an unset variable is an error, an empty one is "".
//   - ${VAR:-default} is the default when VAR is unset or empty, as in POSIX shells.
//   - ${file:PATH} is the content of the file at PATH with trailing newlines removed, the way
//     Kubernetes and Docker hand secrets to a process.
func expand(s string, lookup func(string) (string, bool), readFile func(string) ([]byte, error)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			b.WriteByte('$')
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			// The value is not quoted: it is often a password written in clear.
			return "", fmt.Errorf("unterminated ${ at character %d: close it with } or write $$ for a literal $", i+1)
		}
		expr := s[i+2 : i+2+end]
		v, err := expandOne(expr, i+1, lookup, readFile)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		i += 2 + end
	}
	return b.String(), nil
}

// expandOne resolves the reference ${expr} found at character pos (1-based) of the value.
func expandOne(expr string, pos int, lookup func(string) (string, bool), readFile func(string) ([]byte, error)) (string, error) {
	if path, ok := strings.CutPrefix(expr, "file:"); ok {
		if path == "" {
			return "", fmt.Errorf("${file:} needs a path")
		}
		data, err := readFile(path)
		if err != nil {
			return "", fmt.Errorf("${file:%s}: %w", path, err)
		}
		return strings.TrimRight(string(data), "\r\n"), nil
	}
	name, def, hasDefault := strings.Cut(expr, ":-")
	if !validVarName(name) {
		// Not quoted: what follows a stray "${" in a password is part of the password.
		return "", fmt.Errorf("${ at character %d does not start a variable name (letters, digits and _, not starting with a digit)", pos)
	}
	v, ok := lookup(name)
	if hasDefault {
		if !ok || v == "" {
			return def, nil
		}
		return v, nil
	}
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set (set it, or write ${%s:-default})", name, name)
	}
	return v, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

var (
	osLookupEnv = os.LookupEnv
	osReadFile  = os.ReadFile
)

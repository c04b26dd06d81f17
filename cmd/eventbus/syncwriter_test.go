package main

import (
	"bytes"
	"sync"
)

var syncMu sync.Mutex

// syncWriter lets a test read what a command running in another goroutine has written so far.
type syncWriter struct{ w *bytes.Buffer }

func (s *syncWriter) Write(p []byte) (int, error) {
	syncMu.Lock()
	defer syncMu.Unlock()
	return s.w.Write(p)
}

func readSync(b *bytes.Buffer) string {
	syncMu.Lock()
	defer syncMu.Unlock()
	return b.String()
}

package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"strings"
	"testing"
)

func TestPctRanksAsPython(t *testing.T) {
	// Python: round(0.5 * 1) == 0 and round(0.5 * 3) == 2 (half to even).
	if got := pct([]int64{10, 20}, 50); got != 10 {
		t.Fatalf("p50 of two: %d", got)
	}
	if got := pct([]int64{1, 2, 3, 4}, 50); got != 3 {
		t.Fatalf("p50 of four: %d", got)
	}
	s := summarize([]int64{3e6, 1e6, 2e6})
	if *s.P50Ms != 2 || *s.MaxMs != 3 {
		t.Fatalf("summary: %v %v", *s.P50Ms, *s.MaxMs)
	}
	if empty := summarize(nil); empty.P50Ms != nil {
		t.Fatal("nothing measured must be null")
	}
}

// A server that keeps its compression context refers back to earlier messages.
func TestInflateKeepsTheContext(t *testing.T) {
	var wire bytes.Buffer
	w, _ := flate.NewWriter(&wire, flate.BestSpeed)
	var in inflater
	for _, msg := range []string{`{"type":"comments","items":[1]}`, `{"type":"comments","items":[1]}`,
		`{"type":"comments","items":[2]}`} {
		wire.Reset()
		_, _ = w.Write([]byte(msg))
		_ = w.Flush()
		frame := bytes.TrimSuffix(wire.Bytes(), []byte{0, 0, 0xff, 0xff})
		got, err := in.inflate(append([]byte(nil), frame...))
		if err != nil || string(got) != msg {
			t.Fatalf("inflated %q (%v), want %q", got, err, msg)
		}
	}
}

func TestAnAnswerIsReadWithItsBody(t *testing.T) {
	raw := "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\ncontent-length: 10\r\n\r\n" +
		`{"id":"x"}` + "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n"
	h := &httpConn{r: bufio.NewReader(strings.NewReader(raw))}
	status, body, err := h.readResponse()
	if err != nil || status != 201 || string(body) != `{"id":"x"}` {
		t.Fatalf("first: %d %q %v", status, body, err)
	}
	if status, body, err = h.readResponse(); err != nil || status != 429 || len(body) != 0 {
		t.Fatalf("second: %d %q %v", status, body, err)
	}
}

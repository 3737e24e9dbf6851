package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/json"
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

func TestAnAppendIsOneHPubWithItsMsgID(t *testing.T) {
	frame := appendHPub(nil, "cmt.us-east.hot", []byte("_JSA.0.7"), []byte("abc"), []byte(`{"x":1}`))
	want := "HPUB cmt.us-east.hot _JSA.0.7 30 37\r\nNATS/1.0\r\nNats-Msg-Id: abc\r\n\r\n{\"x\":1}\r\n"
	if string(frame) != want {
		t.Fatalf("frame %q, want %q", frame, want)
	}
	head, _, _ := strings.Cut(want, "\r\n")
	rest := want[len(head)+2 : len(want)-2]
	if len("NATS/1.0\r\nNats-Msg-Id: abc\r\n\r\n") != 30 || len(rest) != 37 {
		t.Fatalf("sizes do not match the frame: %d", len(rest))
	}
}

func TestACommentReadsAsTheModelWritesIt(t *testing.T) {
	ids := commentIDs{node: "bench.3"}
	first := string(ids.next(nil, 0x190f3a2b4c5))
	second := string(ids.next(nil, 0x190f3a2b4c5))
	if first != "0190f3a2b4c50000-bench.3" || second != "0190f3a2b4c50001-bench.3" {
		t.Fatalf("ids %q %q", first, second)
	}
	body := appendComment(nil, []byte(first), "cmt.us-east.s7", 1042, []byte("hi"), 5)
	var c map[string]any
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	if c["stream"] != "s7" || c["region"] != "us-east" || c["user"] != "user42" ||
		c["ts"] != float64(5) || c["reply_to"] != nil || len(c) != 10 {
		t.Fatalf("comment %v", c)
	}
}

func TestMessageLinesAndAcks(t *testing.T) {
	m, err := parseMsgLine([]byte("HMSG _JSA.2.15 1 12 40\r\n"))
	if err != nil || string(m.subject) != "_JSA.2.15" || m.headers != 12 || m.total != 40 {
		t.Fatalf("hmsg %+v %v", m, err)
	}
	m, err = parseMsgLine([]byte("MSG _JSA.2.15 1 reply.x 33\r\n"))
	if err != nil || string(m.subject) != "_JSA.2.15" || m.headers != 0 || m.total != 33 {
		t.Fatalf("msg %+v %v", m, err)
	}
	for _, bad := range []string{"MSG a 1\r\n", "HMSG a 1 9 4\r\n", "MSG a 1 -3\r\n", "PONG\r\n"} {
		if _, err := parseMsgLine([]byte(bad)); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
	if slot, ok := slotOf([]byte("_JSA.2.15"), "_JSA.2.", 16); !ok || slot != 15 {
		t.Fatalf("slot %d %v", slot, ok)
	}
	if _, ok := slotOf([]byte("_JSA.2.16"), "_JSA.2.", 16); ok {
		t.Fatal("a slot past the window")
	}
	for body, want := range map[string]string{
		`{"stream":"COMMENTS","seq":12}`:                                                    "",
		`{"stream":"COMMENTS","seq":12,"duplicate":true}`:                                   "duplicate",
		`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`: "js 503/10077 maximum messages exceeded",
		`{"type":"x"}`: "not an ack",
	} {
		if got := ackVerdict(nil, []byte(body)); got != want {
			t.Fatalf("%s: %q, want %q", body, got, want)
		}
	}
	if got := ackVerdict([]byte("NATS/1.0 503\r\n\r\n"), nil); got != "no responders" {
		t.Fatalf("status: %q", got)
	}
}

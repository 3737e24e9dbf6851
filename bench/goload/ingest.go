package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ackTimeout is how long a WebSocket poster waits for its comment's ack (as bench/ingest.py).
const ackTimeout = 30 * time.Second

// ingest is bench/ingest.py's load: posts over HTTP or the WebSocket comment frame, each a
// fresh serial number n, into stream s{n % streams} as user tokens[n % len(tokens)].
type ingest struct {
	urls    []string
	tokens  []string
	streams int
	text    []byte
	serial  atomic.Int64
	http    []*httpConn
	ws      []*wsPoster
}

func newIngest(cmd command) (*ingest, error) {
	if len(cmd.URLs) == 0 || len(cmd.Tokens) == 0 || cmd.Streams <= 0 {
		return nil, fmt.Errorf("ingest_setup needs urls, tokens and streams")
	}
	return &ingest{urls: cmd.URLs, tokens: cmd.Tokens, streams: cmd.Streams,
		text: jsonText(cmd.Text)}, nil
}

// phase is what one ingest_run measured: the latency of every stored post, the failures by
// what went wrong.
type phase struct {
	mu     sync.Mutex
	lat    []int64
	queued []int64 // open loop over HTTP: from a post's scheduled time to a free connection
	errors map[string]int
}

func (p *phase) stored(ns int64) {
	p.mu.Lock()
	p.lat = append(p.lat, ns)
	p.mu.Unlock()
}

func (p *phase) waited(ns int64) {
	p.mu.Lock()
	p.queued = append(p.queued, ns)
	p.mu.Unlock()
}

func (p *phase) fail(what string) {
	p.mu.Lock()
	p.errors[what]++
	p.mu.Unlock()
}

type ingestResult struct {
	Op      string         `json:"op"`
	Stored  int            `json:"stored"`
	Seconds float64        `json:"seconds"`
	Errors  map[string]int `json:"errors"`
	Summary
	// the open loop over HTTP: how long its posts waited for a free connection (the rest of
	// their latency is the server's answer)
	Queued *Summary `json:"queued,omitempty"`
}

type connected struct {
	Op     string `json:"op"`
	Opened int    `json:"opened"`
}

func (in *ingest) do(cmd command) (any, error) {
	switch cmd.Op {
	case "http_connect":
		for i := range cmd.N {
			c, err := dialHTTP(in.urls[i%len(in.urls)])
			if err != nil {
				return nil, err
			}
			in.http = append(in.http, c)
		}
		return connected{cmd.Op, len(in.http)}, nil
	case "ws_connect":
		if server.name != "chorus" {
			return nil, fmt.Errorf("no comment frame on %s", server.name)
		}
		for i := range cmd.N {
			p, err := dialPoster(in.urls[i%len(in.urls)], fmt.Sprintf("w%d", i),
				in.tokens[i%len(in.tokens)])
			if err != nil {
				return nil, err
			}
			in.ws = append(in.ws, p)
		}
		for _, p := range in.ws {
			select {
			case <-p.hello:
			case <-time.After(60 * time.Second):
				return nil, fmt.Errorf("no hello in 60 s on %s", p.stream)
			}
		}
		return connected{cmd.Op, len(in.ws)}, nil
	case "http_close":
		for _, c := range in.http {
			c.close()
		}
		in.http = nil
		return done{cmd.Op}, nil
	case "ws_close":
		for _, p := range in.ws {
			p.ws.close()
		}
		in.ws = nil
		return done{cmd.Op}, nil
	}
	if cmd.Seconds <= 0 {
		return nil, fmt.Errorf("ingest_run needs seconds")
	}
	p := &phase{errors: map[string]int{}}
	began := nowNs()
	switch {
	case cmd.Transport == "http" && cmd.Mode == "closed":
		in.httpClosed(seconds(cmd.Seconds), p)
	case cmd.Transport == "http" && cmd.Mode == "open":
		in.httpOpen(cmd.Rate, cmd.Seconds, p)
	case cmd.Transport == "ws" && cmd.Mode == "closed":
		in.wsClosed(seconds(cmd.Seconds), p)
	case cmd.Transport == "ws" && cmd.Mode == "open":
		in.wsOpen(cmd.Rate, cmd.Seconds, p)
	default:
		return nil, fmt.Errorf("no %q %q phase", cmd.Transport, cmd.Mode)
	}
	took := float64(nowNs()-began) / 1e9
	r := ingestResult{Op: cmd.Op, Stored: len(p.lat), Seconds: took, Errors: p.errors,
		Summary: summarize(p.lat)}
	if len(p.queued) > 0 {
		q := summarize(p.queued)
		r.Queued = &q
	}
	return r, nil
}

func seconds(s float64) int64 { return int64(s * 1e9) }

func (in *ingest) next() (n int64, stream, token string) {
	n = in.serial.Add(1) - 1
	return n, "s" + strconv.FormatInt(n%int64(in.streams), 10), in.tokens[n%int64(len(in.tokens))]
}

// httpPost posts one comment and records it from began (ns); false when the connection is
// lost.
func (in *ingest) httpPost(c *httpConn, p *phase, began int64) bool {
	n, stream, token := in.next()
	text := strconv.AppendInt(append(make([]byte, 0, 32), in.text...), n, 10)
	status, answer, err := c.postComment(stream, token, text)
	switch {
	case err != nil:
		p.fail("connection lost")
		return false
	case server.stored(status):
		p.stored(nowNs() - began)
	default:
		p.fail(fmt.Sprintf("%d %q", status, answer[:min(80, len(answer))]))
	}
	return true
}

func (in *ingest) httpClosed(length int64, p *phase) {
	until := nowNs() + length
	var wg sync.WaitGroup
	for _, c := range in.http {
		wg.Go(func() {
			for nowNs() < until && in.httpPost(c, p, nowNs()) {
			}
		})
	}
	wg.Wait()
}

// httpOpen posts at rate/s on a fixed schedule; a post waits for a free connection and its
// latency counts from its scheduled time.
func (in *ingest) httpOpen(rate, secs float64, p *phase) {
	free := make(chan *httpConn, len(in.http))
	for _, c := range in.http {
		free <- c
	}
	schedule(rate, secs, func(scheduled int64) {
		c := <-free
		p.waited(nowNs() - scheduled)
		if !in.httpPost(c, p, scheduled) && c.redial() != nil {
			p.fail("cannot reconnect")
		}
		free <- c
	})
}

// schedule calls one(scheduled ns) rate times a second for secs seconds, each in a goroutine
// of its own, and waits for them all.
func schedule(rate, secs float64, one func(int64)) {
	var wg sync.WaitGroup
	began := nowNs()
	total := int(rate * secs)
	at := func(i int) int64 { return began + int64(float64(i)*1e9/rate) }
	for sent := 0; sent < total; {
		due := min(total, int(float64(nowNs()-began)*rate/1e9)+1)
		for ; sent < due; sent++ {
			scheduled := at(sent)
			wg.Go(func() { one(scheduled) })
		}
		if wait := at(sent) - nowNs(); wait > 0 {
			time.Sleep(time.Duration(wait))
		}
	}
	wg.Wait()
}

func (in *ingest) wsClosed(length int64, p *phase) {
	until := nowNs() + length
	var wg sync.WaitGroup
	for _, w := range in.ws {
		wg.Go(func() {
			for nowNs() < until && !w.ws.lost.Load() {
				n, _, _ := in.next()
				w.post(n, in.text, p, nowNs())
			}
		})
	}
	wg.Wait()
}

func (in *ingest) wsOpen(rate, secs float64, p *phase) {
	var turn atomic.Int64
	schedule(rate, secs, func(scheduled int64) {
		w := in.ws[(turn.Add(1)-1)%int64(len(in.ws))]
		n, _, _ := in.next()
		w.post(n, in.text, p, scheduled)
	})
}

func (in *ingest) closeAll() {
	for _, c := range in.http {
		c.close()
	}
	for _, w := range in.ws {
		w.ws.close()
	}
	in.http, in.ws = nil, nil
}

// wsPoster is a WebSocket that watches its own stream and posts into it with comment frames,
// as bench/ingest.py's WsPoster.
type wsPoster struct {
	ws      *wsConn
	stream  string
	hello   chan struct{}
	once    sync.Once
	mu      sync.Mutex
	waiting map[string]chan string
}

func dialPoster(url, stream, token string) (*wsPoster, error) {
	ws, err := dialWS(url, livePath(stream, token), "")
	if err != nil {
		return nil, err
	}
	p := &wsPoster{ws: ws, stream: stream, hello: make(chan struct{}),
		waiting: map[string]chan string{}}
	go ws.readLoop(p.onText)
	return p, nil
}

var commentsFrame = []byte(`{"type":"comments"`)

func (p *wsPoster) onText(payload []byte, _ int64) {
	if bytes.HasPrefix(payload, commentsFrame) {
		return // its own comments, delivered back to it as a viewer
	}
	var frame struct {
		Type string          `json:"type"`
		Ref  json.RawMessage `json:"ref"`
		Code string          `json:"code"`
	}
	if json.Unmarshal(payload, &frame) != nil {
		return
	}
	switch frame.Type {
	case "ack", "error":
		ref := string(bytes.Trim(frame.Ref, `"`))
		p.mu.Lock()
		waiter, ok := p.waiting[ref]
		delete(p.waiting, ref)
		p.mu.Unlock()
		if !ok {
			return
		}
		verdict := "ok"
		if frame.Type == "error" {
			verdict = frame.Code
			if verdict == "" {
				verdict = "?"
			}
		}
		waiter <- verdict
	case "hello":
		p.once.Do(func() { close(p.hello) })
	}
}

func (p *wsPoster) post(n int64, text []byte, ph *phase, began int64) {
	ref := strconv.FormatInt(n, 10)
	waiter := make(chan string, 1)
	p.mu.Lock()
	p.waiting[ref] = waiter
	p.mu.Unlock()
	frame := make([]byte, 0, 96)
	frame = append(frame, `{"type":"comment","text":"`...)
	frame = append(frame, text...)
	frame = append(frame, ref...)
	frame = append(frame, `","ref":"`...)
	frame = append(frame, ref...)
	frame = append(frame, `"}`...)
	if err := p.ws.sendText(frame); err != nil {
		ph.fail("connection lost")
		return
	}
	timer := time.NewTimer(ackTimeout)
	defer timer.Stop()
	select {
	case verdict := <-waiter:
		if verdict == "ok" {
			ph.stored(nowNs() - began)
		} else {
			ph.fail(verdict)
		}
	case <-timer.C:
		p.mu.Lock()
		delete(p.waiting, ref)
		p.mu.Unlock()
		ph.fail("no ack in 30 s")
	}
}

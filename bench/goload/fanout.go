package main

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// fanout is one step of bench/fanout.py: viewers of one stream on one gateway, posters of
// its comments (HTTP) on another. A comment's text is "t" and the time it was posted (this
// process's clock, ns); sampled viewers read it from every comment they receive.
type fanout struct {
	stream  string
	viewers []*viewer
	posters []*httpConn
	deflate int
}

type viewer struct {
	ws      *wsConn
	sampled bool
	count   atomic.Int64
	hello   chan struct{}
	once    sync.Once
	mu      sync.Mutex
	// (posted, arrived) of every comment a sampled viewer received, ns
	arrivals [][2]int64
}

var (
	idField   = []byte(`"id":`)
	postedAt  = []byte(`"text":"t`)
	helloType = []byte(`"type":"hello"`)
)

func (v *viewer) onText(payload []byte, arrived int64) {
	comments, greeting, answer := server.read(payload)
	if answer != nil {
		_ = v.ws.sendText(answer)
	}
	if greeting {
		v.once.Do(func() { close(v.hello) })
	}
	if comments == 0 {
		return
	}
	v.count.Add(int64(comments))
	if !v.sampled {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for rest := payload; ; {
		at := bytes.Index(rest, postedAt)
		if at < 0 {
			return
		}
		rest = rest[at+len(postedAt):]
		end := bytes.IndexByte(rest, '"')
		if end <= 0 {
			continue
		}
		if posted, err := strconv.ParseInt(string(rest[:end]), 10, 64); err == nil {
			v.arrivals = append(v.arrivals, [2]int64{posted, arrived})
		}
	}
}

func (v *viewer) greeted() bool {
	select {
	case <-v.hello:
		return true
	default:
		return false
	}
}

// openFanout opens the viewers one after another (as bench/fanout.py does), waits up to a
// minute for their hellos (a gateway too busy to greet them all is part of the result), and
// opens the posters' connections.
func openFanout(cmd command) (*fanout, error) {
	f := &fanout{stream: cmd.Stream}
	every := max(1, len(cmd.Tokens)/max(1, cmd.Sampled))
	for i, token := range cmd.Tokens {
		ws, err := dialWS(cmd.URL, server.viewerPath(cmd.Stream, token), cmd.Extensions)
		if err != nil {
			f.close()
			return nil, err
		}
		v := &viewer{ws: ws, sampled: i%every == 0, hello: make(chan struct{})}
		if ws.deflate {
			f.deflate++
		}
		go ws.readLoop(v.onText)
		if join := server.join(cmd.Stream, token); join != nil {
			if err := ws.sendText(join); err != nil {
				f.close()
				return nil, err
			}
		}
		f.viewers = append(f.viewers, v)
	}
	deadline := time.After(60 * time.Second)
wait:
	for _, v := range f.viewers {
		select {
		case <-v.hello:
		case <-deadline:
			break wait
		}
	}
	for range cmd.Posters {
		c, err := dialHTTP(cmd.PostURL)
		if err != nil {
			f.close()
			return nil, err
		}
		f.posters = append(f.posters, c)
	}
	return f, nil
}

type fanoutOpened struct {
	Op                string `json:"op"`
	Viewers           int    `json:"viewers"`
	Opened            int    `json:"opened"`
	DeflateNegotiated int    `json:"deflate_negotiated"`
}

func (f *fanout) opened() fanoutOpened {
	greeted := 0
	for _, v := range f.viewers {
		if v.greeted() {
			greeted++
		}
	}
	return fanoutOpened{"fanout_open", len(f.viewers), greeted, f.deflate}
}

type fanoutResult struct {
	fanoutOpened
	Posted       int     `json:"posted"`
	PostFailures int     `json:"post_failures"`
	PostingS     float64 `json:"posting_s"`
	Delivered    int64   `json:"delivered"`
	Cut          int     `json:"cut"`
	Missing      int64   `json:"missing"`
	Summary              // post -> viewer, sampled viewers
	Post         Summary `json:"post"`      // the post, to its 201
	After201     Summary `json:"after_201"` // from the post's 201 to the viewer
}

// run posts rate comments a second for cmd.Seconds, each on a free poster connection, then
// waits up to cmd.DrainS for every viewer that is not cut to have them all.
func (f *fanout) run(cmd command) (fanoutResult, error) {
	if len(f.posters) == 0 || len(cmd.PosterTokens) == 0 || cmd.Rate <= 0 {
		return fanoutResult{}, fmt.Errorf("fanout_run needs posters, poster_tokens and rate")
	}
	free := make(chan *httpConn, len(f.posters))
	for _, c := range f.posters {
		free <- c
	}
	var (
		mu       sync.Mutex
		posted   int
		failures int
		postLat  []int64
		answered = map[int64]int64{} // a post's start -> its 201, ns
		serial   atomic.Int64
	)
	began := nowNs()
	schedule(cmd.Rate, cmd.Seconds, func(int64) {
		i := serial.Add(1) - 1
		c := <-free
		defer func() { free <- c }()
		started := nowNs()
		text := strconv.AppendInt([]byte("t"), started, 10)
		status, _, err := c.postComment(f.stream, cmd.PosterTokens[i%int64(len(cmd.PosterTokens))], text)
		at := nowNs()
		mu.Lock()
		defer mu.Unlock()
		if err == nil && server.stored(status) {
			posted++
			postLat = append(postLat, at-started)
			answered[started] = at
			return
		}
		failures++
		if err != nil {
			_ = c.redial()
		}
	})
	posting := float64(nowNs()-began) / 1e9
	deadline := nowNs() + seconds(cmd.DrainS)
	for nowNs() < deadline && f.anyBehind(int64(posted)) {
		time.Sleep(50 * time.Millisecond)
	}
	r := fanoutResult{fanoutOpened: f.opened(), Posted: posted, PostFailures: failures,
		PostingS: posting, Post: summarize(postLat)}
	r.Op = cmd.Op
	var latencies, after201 []int64
	for _, v := range f.viewers {
		n := v.count.Load()
		r.Delivered += n
		if v.ws.cut() {
			r.Cut++
			r.Missing -= max(0, int64(posted)-n)
		}
		v.mu.Lock()
		for _, a := range v.arrivals {
			latencies = append(latencies, a[1]-a[0])
			if ok, found := answered[a[0]]; found {
				after201 = append(after201, a[1]-ok)
			}
		}
		v.mu.Unlock()
	}
	r.Missing += int64(posted)*int64(len(f.viewers)) - r.Delivered
	r.Summary, r.After201 = summarize(latencies), summarize(after201)
	return r, nil
}

func (f *fanout) anyBehind(posted int64) bool {
	for _, v := range f.viewers {
		if v.count.Load() < posted && !v.ws.cut() {
			return true
		}
	}
	return false
}

func (f *fanout) close() {
	for _, v := range f.viewers {
		v.ws.close()
	}
	for _, c := range f.posters {
		c.close()
	}
	f.viewers, f.posters = nil, nil
}

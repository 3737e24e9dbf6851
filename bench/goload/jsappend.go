package main

// jsappend is bench/jsappend.py's load: appends to JetStream over the raw NATS protocol, as
// fast as a few connections can, so that what is measured is the server's append path and
// not a client. Each connection pipelines `HPUB <subject> <reply>` with a `Nats-Msg-Id`
// header (unique per message, as a gateway's post) and a comment's JSON (chorus/model.py
// `Comment`, about 240 bytes), keeps a window of outstanding acks and reads the acks on its
// one inbox subscription. A window slot is a reply subject (`_JSA.<conn>.<slot>`): an ack
// names the slot it frees and the send time it answers, whatever order acks from several
// streams arrive in. Optionally one more connection reads the log's RePublish, as a gateway
// does, and counts what it hears.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	jsInbox = "_JSA"
	// past this after the sending stopped, an outstanding append counts as "no ack"
	jsDrainTimeout = 10 * time.Second
	// bounds what the client holds: a window beyond this measures queueing, not appends
	jsMaxWindow = 1 << 16
	jsMaxConns  = 256
	jsBufSize   = 64 << 10
	jsDialWait  = 5 * time.Second
)

type jsAppendResult struct {
	Op       string         `json:"op"`
	Appended int            `json:"appended"`
	Seconds  float64        `json:"seconds"` // from the first send to the last ack
	Errors   map[string]int `json:"errors"`
	Live     int            `json:"live"` // messages the RePublish readers heard, together
	// how long after the last ack the readers had heard every append (their lag behind the
	// acks, at most jsDrainTimeout)
	LiveLagS float64 `json:"live_lag_s"`
	Summary          // ack latency of the appends
}

// jsConn is one publishing connection: its writer fills the window, its reader frees it.
type jsConn struct {
	id    int
	conn  net.Conn
	r     *bufio.Reader
	mu    sync.Mutex // the writer and the reader's PONG share w
	w     *bufio.Writer
	free  chan int
	sent  []atomic.Int64
	gone  chan struct{} // closed when the reader stops
	inbox string
	// the reader's, read after it stopped
	lat      []int64
	errors   map[string]int
	lastAck  int64
	appended int
}

func runJSAppend(cmd command) (any, error) {
	switch {
	case cmd.URL == "" || len(cmd.Subjects) == 0 || cmd.Seconds <= 0:
		return nil, fmt.Errorf("jsappend needs url, subjects and seconds")
	case cmd.Connections < 1 || cmd.Connections > jsMaxConns:
		return nil, fmt.Errorf("jsappend: connections must be 1..%d", jsMaxConns)
	case cmd.Window < 1 || cmd.Window > jsMaxWindow:
		return nil, fmt.Errorf("jsappend: window must be 1..%d", jsMaxWindow)
	case cmd.Readers < 0 || cmd.Readers > jsMaxConns:
		return nil, fmt.Errorf("jsappend: readers must be 0..%d", jsMaxConns)
	}
	addr := strings.TrimPrefix(cmd.URL, "nats://")
	// Each reader is one more subscriber of the RePublish, as each gateway reading the live
	// subjects is; a live subject without a count means one.
	var readers []*liveReader
	defer func() {
		for _, l := range readers {
			l.close()
		}
	}()
	for i := 0; cmd.Live != "" && i < max(1, cmd.Readers); i++ {
		l, err := readLive(addr, cmd.Live)
		if err != nil {
			return nil, err
		}
		readers = append(readers, l)
	}
	conns := make([]*jsConn, 0, cmd.Connections)
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	for i := range cmd.Connections {
		c, err := dialJS(addr, i, cmd.Window)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	text := jsonText(cmd.Text)
	began := nowNs()
	until := began + seconds(cmd.Seconds)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.write(cmd.Subjects, until, text) })
	}
	wg.Wait()
	// The acks still outstanding, for as long as the server may take to answer them.
	deadline := nowNs() + int64(jsDrainTimeout)
	for _, c := range conns {
		c.drain(deadline)
	}
	r := jsAppendResult{Op: cmd.Op, Errors: map[string]int{}}
	var lat []int64
	last := began
	for _, c := range conns {
		outstanding := cap(c.free) - len(c.free)
		c.close()
		if outstanding > 0 {
			r.Errors["no ack"] += outstanding
		}
		r.Appended += c.appended
		lat = append(lat, c.lat...)
		for k, v := range c.errors {
			r.Errors[k] += v
		}
		last = max(last, c.lastAck)
	}
	conns = nil
	r.Seconds = float64(last-began) / 1e9
	r.Summary = summarize(lat)
	// The RePublish of every append is the server's work too: the run ends when the readers
	// have heard them all.
	deadline = nowNs() + int64(jsDrainTimeout)
	caught := last
	for _, l := range readers {
		caught = max(caught, l.await(int64(r.Appended), deadline))
	}
	r.LiveLagS = float64(max(0, caught-last)) / 1e9
	for _, l := range readers {
		r.Live += l.stop()
		if l.lost.Load() {
			r.Errors["reader lost"]++
		}
	}
	return r, nil
}

// natsHello dials addr, reads the server's INFO, sends CONNECT, the subscriptions and a PING,
// and returns once the PONG says the server holds the subscriptions.
func natsHello(addr string, subs ...string) (net.Conn, *bufio.Reader, *bufio.Writer, error) {
	conn, err := net.DialTimeout("tcp", addr, jsDialWait)
	if err != nil {
		return nil, nil, nil, err
	}
	r := bufio.NewReaderSize(conn, jsBufSize)
	w := bufio.NewWriterSize(conn, jsBufSize)
	fail := func(err error) (net.Conn, *bufio.Reader, *bufio.Writer, error) {
		_ = conn.Close()
		return nil, nil, nil, fmt.Errorf("nats %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(jsDialWait))
	line, err := r.ReadSlice('\n')
	if err != nil {
		return fail(err)
	}
	if !bytes.HasPrefix(line, []byte("INFO ")) {
		return fail(fmt.Errorf("no INFO: %q", line))
	}
	_, _ = w.WriteString(`CONNECT {"verbose":false,"pedantic":false,"headers":true,` +
		`"no_responders":true,"protocol":1,"name":"goload-jsappend"}` + "\r\n")
	for i, s := range subs {
		_, _ = fmt.Fprintf(w, "SUB %s %d\r\n", s, i+1)
	}
	_, _ = w.WriteString("PING\r\n")
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return fail(err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("PONG")):
			_ = conn.SetDeadline(time.Time{})
			return conn, r, w, nil
		case bytes.HasPrefix(line, []byte("-ERR")):
			return fail(errors.New(string(bytes.TrimSpace(line))))
		}
	}
}

func dialJS(addr string, id, window int) (*jsConn, error) {
	inbox := jsInbox + "." + strconv.Itoa(id) + "."
	conn, r, w, err := natsHello(addr, inbox+"*")
	if err != nil {
		return nil, err
	}
	c := &jsConn{id: id, conn: conn, r: r, w: w, free: make(chan int, window),
		sent: make([]atomic.Int64, window), gone: make(chan struct{}), inbox: inbox,
		errors: map[string]int{}}
	for slot := range window {
		c.free <- slot
	}
	go c.read()
	return c, nil
}

func (c *jsConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

// write sends appends round-robin over subjects (each connection starting at its own) until
// the clock passes until, the window permitting; it flushes whenever the window is full.
func (c *jsConn) write(subjects []string, until int64, text []byte) {
	ids := commentIDs{node: "bench." + strconv.Itoa(c.id)}
	var frame, body, id []byte
	reply := []byte(c.inbox)
	for turn := c.id; ; turn++ {
		var slot int
		select {
		case slot = <-c.free:
		default:
			if c.flush() != nil {
				return
			}
			select {
			case slot = <-c.free:
			case <-c.gone:
				return
			}
		}
		now := nowNs()
		if now >= until {
			c.free <- slot
			_ = c.flush()
			return
		}
		subject := subjects[turn%len(subjects)]
		ms := wallMs(now)
		id = ids.next(id[:0], ms)
		body = appendComment(body[:0], id, subject, turn, text, ms)
		frame = appendHPub(frame[:0], subject, strconv.AppendInt(reply, int64(slot), 10), id,
			body)
		c.sent[slot].Store(now)
		c.mu.Lock()
		_, err := c.w.Write(frame)
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// read takes the acks until the connection closes.
func (c *jsConn) read() {
	defer close(c.gone)
	var data []byte
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				c.errors["connection lost"]++
			}
			return
		}
		switch {
		case bytes.HasPrefix(line, []byte("MSG ")), bytes.HasPrefix(line, []byte("HMSG ")):
			m, err := parseMsgLine(line)
			if err != nil {
				c.errors["bad protocol"]++
				return
			}
			if cap(data) < m.total+2 {
				data = make([]byte, m.total+2)
			}
			data = data[:m.total+2]
			if _, err := io.ReadFull(c.r, data); err != nil {
				return
			}
			c.ack(m.subject, data[:m.headers], data[m.headers:m.total])
		case bytes.HasPrefix(line, []byte("PING")):
			c.mu.Lock()
			_, _ = c.w.WriteString("PONG\r\n")
			_ = c.w.Flush()
			c.mu.Unlock()
		case bytes.HasPrefix(line, []byte("-ERR")):
			c.errors[string(bytes.TrimSpace(line))]++
		}
	}
}

func (c *jsConn) ack(subject, headers, body []byte) {
	slot, ok := slotOf(subject, c.inbox, cap(c.free))
	if !ok {
		c.errors["stray message"]++
		return
	}
	now := nowNs()
	if verdict := ackVerdict(headers, body); verdict != "" {
		c.errors[verdict]++
	} else {
		c.appended++
		c.lat = append(c.lat, now-c.sent[slot].Load())
		c.lastAck = now
	}
	c.free <- slot
}

// drain waits until every append of the window is answered, the reader stopped, or the
// clock passed deadline (ns).
func (c *jsConn) drain(deadline int64) {
	for len(c.free) < cap(c.free) && nowNs() < deadline {
		select {
		case <-c.gone:
			return
		case <-time.After(time.Millisecond): // polling the window; bounded by deadline
		}
	}
}

func (c *jsConn) close() {
	_ = c.conn.Close()
	<-c.gone
}

// liveReader is one connection subscribed to the log's RePublish, counting what it hears.
type liveReader struct {
	conn  net.Conn
	r     *bufio.Reader
	w     *bufio.Writer // the PONGs
	heard atomic.Int64
	gone  chan struct{}
	lost  atomic.Bool // the connection ended before stop
}

func readLive(addr, subject string) (*liveReader, error) {
	conn, r, w, err := natsHello(addr, subject)
	if err != nil {
		return nil, err
	}
	l := &liveReader{conn: conn, r: r, w: w, gone: make(chan struct{})}
	go l.read()
	return l, nil
}

func (l *liveReader) read() {
	defer close(l.gone)
	for {
		line, err := l.r.ReadSlice('\n')
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.lost.Store(true)
			}
			return
		}
		switch {
		case bytes.HasPrefix(line, []byte("MSG ")), bytes.HasPrefix(line, []byte("HMSG ")):
			m, err := parseMsgLine(line)
			if err != nil {
				l.lost.Store(true)
				return
			}
			if _, err := l.r.Discard(m.total + 2); err != nil {
				return
			}
			l.heard.Add(1)
		case bytes.HasPrefix(line, []byte("PING")):
			// A region's server pings every 2 s and drops a connection that misses 3.
			_, _ = l.w.WriteString("PONG\r\n")
			_ = l.w.Flush()
		}
	}
}

// await waits until the reader heard n messages, it stopped, or the clock passed deadline
// (ns); it returns the time it stopped waiting.
func (l *liveReader) await(n, deadline int64) int64 {
	for l.heard.Load() < n && nowNs() < deadline {
		select {
		case <-l.gone:
			return nowNs()
		case <-time.After(time.Millisecond): // polling the count; bounded by deadline
		}
	}
	return nowNs()
}

// stop closes the reader and returns how many messages it heard.
func (l *liveReader) stop() int {
	l.close()
	return int(l.heard.Load())
}

func (l *liveReader) close() {
	_ = l.conn.Close()
	<-l.gone
}

// -- the protocol, pure ---------------------------------------------------------------------

// wallEpochMs is the wall clock at epoch: a comment's ts and id are wall-clock ms, read as
// epoch plus the monotonic clock so that a run's ids never go back.
var wallEpochMs = time.Now().UnixMilli()

func wallMs(ns int64) int64 { return wallEpochMs + ns/1e6 }

// commentIDs makes chorus/ids.py's ids: 12 hex digits of ms, 4 of a serial within the ms,
// and the node; unique per node as long as a node makes fewer than 65,536 a ms.
type commentIDs struct {
	node string
	ms   int64
	seq  int64
}

func (g *commentIDs) next(dst []byte, ms int64) []byte {
	if ms > g.ms {
		g.ms, g.seq = ms, 0
	} else if g.seq < 0xffff {
		g.seq++
	} else {
		g.ms, g.seq = g.ms+1, 0
	}
	dst = appendHex(dst, uint64(g.ms), 12)
	dst = appendHex(dst, uint64(g.seq), 4)
	return append(append(dst, '-'), g.node...)
}

func appendHex(dst []byte, v uint64, width int) []byte {
	const digits = "0123456789abcdef"
	for i := width - 1; i >= 0; i-- {
		dst = append(dst, digits[(v>>(4*uint(i)))&0xf])
	}
	return dst
}

// appendComment appends a comment's JSON as chorus/model.py `Comment.encode` writes it: the
// stream and region are the subject's last two tokens (`cmt.<region>.<stream>`), the user
// one of 1,000 by n.
func appendComment(dst, id []byte, subject string, n int, text []byte, ms int64) []byte {
	region, stream := "", subject
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		stream = subject[i+1:]
		region = subject[:i]
		if j := strings.LastIndexByte(region, '.'); j >= 0 {
			region = region[j+1:]
		}
	}
	var digits [8]byte
	user := strconv.AppendInt(digits[:0], int64(n%1000), 10)
	dst = append(dst, `{"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","stream":"`...)
	dst = append(dst, stream...)
	dst = append(dst, `","region":"`...)
	dst = append(dst, region...)
	dst = append(dst, `","user":"user`...)
	dst = append(dst, user...)
	dst = append(dst, `","name":"User `...)
	dst = append(dst, user...)
	dst = append(dst, `","text":"`...)
	dst = append(dst, text...)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, `,"reply_to":null,"badge":"","shadow":false}`...)
}

// appendHPub appends one HPUB of payload on subject, answered on reply, with msgID as its
// Nats-Msg-Id (JetStream's dedup key).
func appendHPub(dst []byte, subject string, reply, msgID, payload []byte) []byte {
	hdrLen := len("NATS/1.0\r\nNats-Msg-Id: ") + len(msgID) + len("\r\n\r\n")
	dst = append(dst, "HPUB "...)
	dst = append(dst, subject...)
	dst = append(dst, ' ')
	dst = append(dst, reply...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(hdrLen), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(hdrLen+len(payload)), 10)
	dst = append(dst, "\r\nNATS/1.0\r\nNats-Msg-Id: "...)
	dst = append(dst, msgID...)
	dst = append(dst, "\r\n\r\n"...)
	dst = append(dst, payload...)
	return append(dst, "\r\n"...)
}

// msgLine is a MSG or HMSG control line: the subject, the header bytes (0 for MSG) and the
// bytes of headers and payload together.
type msgLine struct {
	subject []byte
	headers int
	total   int
}

// parseMsgLine reads `MSG <subject> <sid> [reply] <size>` or
// `HMSG <subject> <sid> [reply] <header size> <total size>` (with its CRLF); the subject
// aliases line.
func parseMsgLine(line []byte) (msgLine, error) {
	var f [6][]byte
	n := 0
	for rest := bytes.TrimRight(line, "\r\n"); len(rest) > 0; {
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			i = len(rest)
		}
		if i > 0 {
			if n == len(f) {
				return msgLine{}, fmt.Errorf("too many fields: %q", line)
			}
			f[n] = rest[:i]
			n++
		}
		rest = rest[min(i+1, len(rest)):]
	}
	num := func(b []byte) (int, error) {
		v, err := strconv.Atoi(string(b))
		if err != nil || v < 0 {
			return 0, fmt.Errorf("bad size in %q", line)
		}
		return v, nil
	}
	switch {
	case n >= 4 && n <= 5 && string(f[0]) == "MSG":
		total, err := num(f[n-1])
		return msgLine{subject: f[1], total: total}, err
	case n >= 5 && n <= 6 && string(f[0]) == "HMSG":
		headers, err := num(f[n-2])
		if err != nil {
			return msgLine{}, err
		}
		total, err := num(f[n-1])
		if err == nil && headers > total {
			err = fmt.Errorf("headers past the message in %q", line)
		}
		return msgLine{subject: f[1], headers: headers, total: total}, err
	}
	return msgLine{}, fmt.Errorf("not a message: %q", line)
}

// slotOf is the window slot an ack's subject names (inbox then the slot's number).
func slotOf(subject []byte, inbox string, window int) (int, bool) {
	if !bytes.HasPrefix(subject, []byte(inbox)) {
		return 0, false
	}
	slot, err := strconv.Atoi(string(subject[len(inbox):]))
	return slot, err == nil && slot >= 0 && slot < window
}

var (
	ackOK        = []byte(`{"stream":`)
	ackSeq       = []byte(`"seq":`)
	ackDuplicate = []byte(`"duplicate":true`)
	ackError     = []byte(`"error":`)
)

// ackVerdict is "" for a JetStream ack of a new message, else what went wrong: the status of
// a status message (503: no stream listens), JetStream's error, or a duplicate (every
// message here has a fresh id, so a duplicate is a fault of the run).
func ackVerdict(headers, body []byte) string {
	if len(headers) > 0 {
		status, _, _ := bytes.Cut(headers, []byte("\r\n"))
		if code := bytes.TrimSpace(bytes.TrimPrefix(status, []byte("NATS/1.0"))); len(code) > 0 {
			if bytes.HasPrefix(code, []byte("503")) {
				return "no responders"
			}
			return "status " + string(code)
		}
	}
	switch {
	case bytes.Contains(body, ackError):
		var e struct {
			Error struct {
				Code        int    `json:"code"`
				ErrCode     int    `json:"err_code"`
				Description string `json:"description"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil {
			return "unreadable error"
		}
		return fmt.Sprintf("js %d/%d %s", e.Error.Code, e.Error.ErrCode, e.Error.Description)
	case bytes.Contains(body, ackDuplicate):
		return "duplicate"
	case bytes.HasPrefix(body, ackOK) && bytes.Contains(body, ackSeq):
		return ""
	}
	return "not an ack"
}

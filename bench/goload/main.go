// Command goload is the load client of bench/ingest.py and bench/fanout.py (their
// `--client go`): the same posts, viewers and figures as bench/rawclient.py's Python client,
// at a fraction of its CPU, so that a benchmark on two shared cores measures the servers
// rather than its own client.
//
// It reads commands from stdin, one JSON object a line, and answers each with one JSON
// object a line on stdout (bench/goload/figures.py reads them). The Python side starts the
// cluster, signs the tokens and meters the servers' CPU around each command; this process
// only connects, loads and measures what a client sees:
//
//	{"op":"ingest_setup","urls":[...],"tokens":[...],"streams":200,"text":"comment "}
//	{"op":"http_connect","n":64}  {"op":"ws_connect","n":64}
//	{"op":"ingest_run","transport":"http"|"ws","mode":"closed"|"open","seconds":10,"rate":1000}
//	{"op":"http_close"}  {"op":"ws_close"}
//	{"op":"fanout_open","url":...,"stream":...,"tokens":[...],"sampled":100,
//	 "extensions":"","post_url":...,"posters":32}
//	{"op":"fanout_run","rate":100,"seconds":10,"poster_tokens":[...],"drain_s":5}
//	{"op":"fanout_close"}  {"op":"quit"}
//	{"op":"jsappend","url":"nats://...","subjects":[...],"connections":4,"window":256,
//	 "seconds":10,"text":"...","live":"live.us-east.>","readers":1}   (bench/jsappend.py)
//
// A command that fails is answered {"op":..., "error":"..."} and the process goes on.
//
// With -server centrifugo it loads Centrifugo instead (bench/peer.py): posts are publications
// through its HTTP API (-api-key), viewers connect and subscribe with its JSON protocol; the
// figures are the same. The WebSocket comment frame has no counterpart there.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

type command struct {
	Op string `json:"op"`
	// ingest_setup
	URLs    []string `json:"urls"`
	Tokens  []string `json:"tokens"`
	Streams int      `json:"streams"`
	Text    string   `json:"text"` // a comment's text is this and its serial number
	// http_connect, ws_connect
	N int `json:"n"`
	// ingest_run
	Transport string  `json:"transport"`
	Mode      string  `json:"mode"`
	Seconds   float64 `json:"seconds"`
	Rate      float64 `json:"rate"` // posts/s (open loop, fanout)
	// fanout_open
	URL        string `json:"url"`
	Stream     string `json:"stream"`
	Sampled    int    `json:"sampled"`
	Extensions string `json:"extensions"`
	PostURL    string `json:"post_url"`
	Posters    int    `json:"posters"`
	// fanout_run
	PosterTokens []string `json:"poster_tokens"`
	DrainS       float64  `json:"drain_s"`
	// jsappend (url: the nats-server's; seconds; text)
	Subjects    []string `json:"subjects"`
	Connections int      `json:"connections"`
	Window      int      `json:"window"`
	Live        string   `json:"live"`
	Readers     int      `json:"readers"`
}

// maxCommand bounds one command line: thousands of tokens fit many times over.
const maxCommand = 64 << 20

func main() {
	name := flag.String("server", "chorus", "the server loaded: chorus or centrifugo (bench/peer.py)")
	apiKey := flag.String("api-key", "", "Centrifugo's HTTP API key")
	flag.Parse()
	if err := setDialect(*name, *apiKey); err != nil {
		fmt.Fprintln(os.Stderr, "goload:", err)
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), maxCommand)
	out := json.NewEncoder(os.Stdout)
	s := &session{}
	defer s.closeAll()
	for in.Scan() {
		var cmd command
		dec := json.NewDecoder(bytes.NewReader(in.Bytes()))
		dec.DisallowUnknownFields()
		var reply any
		if err := dec.Decode(&cmd); err != nil {
			reply = failed{Op: "?", Error: fmt.Sprintf("bad command: %v", err)}
		} else if cmd.Op == "quit" {
			_ = out.Encode(map[string]string{"op": "quit"})
			return
		} else if r, err := s.do(cmd); err != nil {
			reply = failed{Op: cmd.Op, Error: err.Error()}
		} else {
			reply = r
		}
		if err := out.Encode(reply); err != nil {
			fmt.Fprintln(os.Stderr, "goload: cannot answer:", err)
			return
		}
	}
}

type failed struct {
	Op    string `json:"op"`
	Error string `json:"error"`
}

type done struct {
	Op string `json:"op"`
}

// session holds what the commands opened, for the commands after them.
type session struct {
	ingest *ingest
	fanout *fanout
}

func (s *session) do(cmd command) (any, error) {
	switch cmd.Op {
	case "ingest_setup":
		if s.ingest != nil {
			s.ingest.closeAll()
		}
		in, err := newIngest(cmd)
		if err != nil {
			return nil, err
		}
		s.ingest = in
		return done{cmd.Op}, nil
	case "http_connect", "ws_connect", "ingest_run", "http_close", "ws_close":
		if s.ingest == nil {
			return nil, fmt.Errorf("%s before ingest_setup", cmd.Op)
		}
		return s.ingest.do(cmd)
	case "fanout_open":
		if s.fanout != nil {
			s.fanout.close()
		}
		f, err := openFanout(cmd)
		if err != nil {
			return nil, err
		}
		s.fanout = f
		return f.opened(), nil
	case "fanout_run":
		if s.fanout == nil {
			return nil, fmt.Errorf("fanout_run before fanout_open")
		}
		return s.fanout.run(cmd)
	case "jsappend":
		return runJSAppend(cmd)
	case "fanout_close":
		if s.fanout != nil {
			s.fanout.close()
			s.fanout = nil
		}
		return done{cmd.Op}, nil
	}
	return nil, fmt.Errorf("unknown op %q", cmd.Op)
}

func (s *session) closeAll() {
	if s.ingest != nil {
		s.ingest.closeAll()
	}
	if s.fanout != nil {
		s.fanout.close()
	}
}

// jsonText is s as the inside of a JSON string.
func jsonText(s string) []byte {
	b, _ := json.Marshal(s)
	return b[1 : len(b)-1]
}

// livePath is bench/rawclient.py's live_path.
func livePath(stream, token string) string {
	return "/v1/streams/" + stream + "/live?access_token=" + token
}

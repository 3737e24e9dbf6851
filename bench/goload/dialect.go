package main

import (
	"bytes"
	"fmt"
	"strconv"
)

// dialect is what differs between the servers the client loads: how a comment is posted, how
// a viewer joins a stream, and how its deliveries read. Chorus is the server measured; the
// peer (Centrifugo, bench/peer.py) is loaded with the same posts and viewers for comparison.
type dialect struct {
	name   string // "chorus" or "centrifugo"
	apiKey string // Centrifugo's HTTP API key
}

// the one the process loads, from its flags
var server = dialect{name: "chorus"}

func setDialect(name, apiKey string) error {
	switch name {
	case "chorus", "centrifugo":
		server = dialect{name: name, apiKey: apiKey}
		return nil
	}
	return fmt.Errorf("no dialect %q (chorus, centrifugo)", name)
}

// postRequest appends to b one HTTP request that posts a comment of text (already escaped
// for JSON) into stream as the user of token: Chorus's POST /v1/streams/{s}/comments, or a
// publication with Centrifugo's HTTP API (history on, so stored as Chorus stores a comment).
func (d dialect) postRequest(b []byte, host, stream, token string, text []byte) []byte {
	var body []byte
	if d.name == "centrifugo" {
		b = append(b, "POST /api/publish HTTP/1.1\r\nHost: "...)
		b = append(b, host...)
		b = append(b, "\r\nX-API-Key: "...)
		b = append(b, d.apiKey...)
		body = append(body, `{"channel":"`...)
		body = append(body, stream...)
		body = append(body, `","data":{"text":"`...)
		body = append(body, text...)
		body = append(body, `"}}`...)
	} else {
		b = append(b, "POST /v1/streams/"...)
		b = append(b, stream...)
		b = append(b, "/comments HTTP/1.1\r\nHost: "...)
		b = append(b, host...)
		b = append(b, "\r\nAuthorization: Bearer "...)
		b = append(b, token...)
		body = append(body, `{"text":"`...)
		body = append(body, text...)
		body = append(body, `"}`...)
	}
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// stored says whether an answer's status means the comment was stored.
func (d dialect) stored(status int) bool {
	if d.name == "centrifugo" {
		return status == 200
	}
	return status == 201
}

// viewerPath is where a viewer of stream opens its WebSocket.
func (d dialect) viewerPath(stream, token string) string {
	if d.name == "centrifugo" {
		return "/connection/websocket"
	}
	return livePath(stream, token)
}

// join is what a viewer sends once the WebSocket is open (nil: nothing, Chorus's URL says
// it all): Centrifugo's connect with the user's token and a subscription to the stream.
func (d dialect) join(stream, token string) []byte {
	if d.name != "centrifugo" {
		return nil
	}
	return []byte(`{"id":1,"connect":{"token":"` + token + `"}}` + "\n" +
		`{"id":2,"subscribe":{"channel":"` + stream + `"}}`)
}

var (
	centrifugoPub   = []byte(`"pub":`)
	centrifugoJoin  = []byte(`{"id":2,"subscribe"`)
	centrifugoEmpty = []byte(`{}`)
)

// read classifies a text message a viewer received: how many comments it delivers, whether
// it is the server's greeting (Chorus's hello, Centrifugo's answer to the subscription), and
// what to answer at once (Centrifugo's ping is an empty object, answered with another).
func (d dialect) read(payload []byte) (comments int, greeting bool, answer []byte) {
	if d.name == "centrifugo" {
		if bytes.Equal(payload, centrifugoEmpty) {
			return 0, false, centrifugoEmpty
		}
		return bytes.Count(payload, centrifugoPub), bytes.Contains(payload, centrifugoJoin), nil
	}
	if bytes.HasPrefix(payload, commentsFrame) {
		return bytes.Count(payload, idField), false, nil
	}
	return 0, bytes.Contains(payload, helloType), nil
}

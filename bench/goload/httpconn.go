package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// httpConn is one keep-alive HTTP/1.1 connection to a gateway, one request at a time, as
// bench/rawclient.py's HttpConnection: the request is written whole in one write.
type httpConn struct {
	host string // host:port, for the Host header and for redialling
	c    net.Conn
	r    *bufio.Reader
	buf  []byte
}

func dialHTTP(url string) (*httpConn, error) {
	host, err := hostPort(url)
	if err != nil {
		return nil, err
	}
	h := &httpConn{host: host}
	return h, h.redial()
}

func (h *httpConn) redial() error {
	if h.c != nil {
		h.c.Close()
	}
	c, err := net.DialTimeout("tcp", h.host, 30*time.Second)
	if err != nil {
		return err
	}
	h.c, h.r = c, bufio.NewReaderSize(c, 16<<10)
	return nil
}

// postComment posts a comment of text (escaped for JSON) into stream as the user of token
// and returns the answer's status and body.
func (h *httpConn) postComment(stream, token string, text []byte) (int, []byte, error) {
	b := server.postRequest(h.buf[:0], h.host, stream, token, text)
	h.buf = b
	if _, err := h.c.Write(b); err != nil {
		return 0, nil, err
	}
	return h.readResponse()
}

// readResponse reads one answer with a Content-Length body (all a gateway sends), without
// net/http's header map: at thousands of posts a second the client must cost little.
func (h *httpConn) readResponse() (int, []byte, error) {
	line, err := h.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("not an HTTP answer: %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line: %q", line)
	}
	length := 0
	for {
		line, err = h.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(line) <= 2 { // the blank line that ends the head
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(name, []byte("content-length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil ||
				length < 0 || length > maxAnswer {
				return 0, nil, fmt.Errorf("bad Content-Length: %q", value)
			}
		}
	}
	answer := make([]byte, length)
	if _, err := io.ReadFull(h.r, answer); err != nil {
		return 0, nil, err
	}
	return status, answer, nil
}

// maxAnswer bounds an answer's body: a gateway's are a few hundred bytes.
const maxAnswer = 1 << 20

func (h *httpConn) close() {
	if h.c != nil {
		h.c.Close()
	}
}

// hostPort turns "http://127.0.0.1:8080" into "127.0.0.1:8080".
func hostPort(url string) (string, error) {
	_, rest, ok := strings.Cut(url, "//")
	if !ok || rest == "" {
		return "", fmt.Errorf("not a URL: %q", url)
	}
	return strings.TrimSuffix(rest, "/"), nil
}

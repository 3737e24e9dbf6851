package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BrowserExtensions is what Chrome and Firefox offer when they open a WebSocket (the same
// string as bench/rawclient.py's BROWSER_EXTENSIONS).
const BrowserExtensions = "permessage-deflate; client_max_window_bits"

// maxMessage bounds one received message: a gateway's frames are far smaller, and a bad
// length must not make the client allocate gigabytes.
const maxMessage = 16 << 20

// wsConn is a WebSocket client as bench/rawclient.py's WsClient: it may offer
// permessage-deflate as a browser does (and then inflates what the server compressed), sends
// masked text frames, and hands each received text message to a callback with the time it
// was read.
type wsConn struct {
	c         net.Conn
	r         *bufio.Reader
	wmu       sync.Mutex
	wbuf      []byte
	deflate   bool // the server accepted permessage-deflate
	inflate   inflater
	closeCode atomic.Int32 // the code of the server's close frame; 0 before one
	lost      atomic.Bool  // the connection ended
	done      chan struct{}
}

func dialWS(url, path, extensions string) (*wsConn, error) {
	host, err := hostPort(url)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", host, 30*time.Second)
	if err != nil {
		return nil, err
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	ext := ""
	if extensions != "" {
		ext = "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(nonce[:]) +
		"\r\nSec-WebSocket-Version: 13\r\n" + ext + "\r\n"
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	w := &wsConn{c: c, r: bufio.NewReaderSize(c, 32<<10), done: make(chan struct{})}
	resp, err := http.ReadResponse(w.r, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("WebSocket upgrade refused: %s", resp.Status)
	}
	_ = c.SetDeadline(time.Time{})
	w.deflate = strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
	return w, nil
}

// readLoop reads until the connection ends, calling onText(message, arrivedNs) for every text
// message; it answers pings and records a close frame's code.
func (w *wsConn) readLoop(onText func([]byte, int64)) {
	defer close(w.done)
	defer w.lost.Store(true)
	var head [8]byte
	var message []byte
	compressed, text := false, false
	for {
		if _, err := io.ReadFull(w.r, head[:2]); err != nil {
			return
		}
		fin, rsv1, opcode := head[0]&0x80 != 0, head[0]&0x40 != 0, head[0]&0x0F
		n := uint64(head[1] & 0x7F)
		switch n {
		case 126:
			if _, err := io.ReadFull(w.r, head[:2]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(head[:2]))
		case 127:
			if _, err := io.ReadFull(w.r, head[:8]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(head[:8])
		}
		if n > maxMessage || uint64(len(message))+n > maxMessage {
			return
		}
		start := len(message)
		message = append(message, make([]byte, n)...)
		if _, err := io.ReadFull(w.r, message[start:]); err != nil {
			return
		}
		switch opcode {
		case 0x9: // ping
			w.send(0xA, message[start:])
			message = message[:start]
			continue
		case 0x8: // close
			code := int32(1005)
			if n >= 2 {
				code = int32(binary.BigEndian.Uint16(message[start:]))
			}
			w.closeCode.Store(code)
			message = message[:start]
			continue
		case 0xA:
			message = message[:start]
			continue
		case 0x1, 0x2:
			compressed, text = rsv1, opcode == 0x1
		}
		if !fin {
			continue // a continuation frame follows
		}
		arrived := nowNs()
		payload := message
		if compressed && w.deflate {
			var err error
			if payload, err = w.inflate.inflate(message); err != nil {
				return
			}
		}
		if text {
			onText(payload, arrived)
		}
		message = message[:0]
	}
}

// send writes one masked frame; a zero masking key leaves the payload as it is (cheap, and
// valid, as bench/rawclient.py does).
func (w *wsConn) send(opcode byte, payload []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	b := append(w.wbuf[:0], 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 65536:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	b = append(b, payload...)
	w.wbuf = b
	_, err := w.c.Write(b)
	return err
}

func (w *wsConn) sendText(payload []byte) error { return w.send(0x1, payload) }

// cut says whether the server closed the connection (a close frame or the end of the stream).
func (w *wsConn) cut() bool { return w.closeCode.Load() != 0 || w.lost.Load() }

func (w *wsConn) close() {
	w.c.Close()
	<-w.done
}

// inflater undoes permessage-deflate with the server's context kept across messages (what a
// browser's offer allows): each message is inflated with the last 32 KiB of what came before
// as the dictionary.
type inflater struct {
	dict []byte
	src  bytes.Reader
	fr   io.ReadCloser
	out  bytes.Buffer
}

// The end of a message the sender flushed and stripped (RFC 7692 7.2.2), then an empty final
// stored block so that the reader reaches io.EOF.
var messageTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

const window = 32 << 10

func (f *inflater) inflate(p []byte) ([]byte, error) {
	f.src.Reset(append(p, messageTail...))
	if f.fr == nil {
		f.fr = flate.NewReaderDict(&f.src, f.dict)
	} else if err := f.fr.(flate.Resetter).Reset(&f.src, f.dict); err != nil {
		return nil, err
	}
	f.out.Reset()
	if _, err := f.out.ReadFrom(f.fr); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	msg := f.out.Bytes()
	f.dict = append(f.dict, msg...)
	if len(f.dict) > 2*window {
		f.dict = append(f.dict[:0], f.dict[len(f.dict)-window:]...)
	}
	return msg, nil
}

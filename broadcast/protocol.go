package broadcast

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds the wire protocol's encoder and decoder (see the package
// documentation for the frames).

// Error codes of error frames.
const (
	codeForbidden  = "forbidden"
	codeBadRequest = "bad_request"
	codeTooLarge   = "too_large"
	codeNotFound   = "not_found"
	codeInternal   = "internal"
)

// Client operations.
const (
	opSubscribe   = "subscribe"
	opUnsubscribe = "unsubscribe"
	opPublish     = "publish"
	opPresence    = "presence"
)

// maxIDLen bounds the id a client may attach to a request.
const maxIDLen = 64

// clientFrame is a decoded client → server frame.
type clientFrame struct {
	Op       string          `json:"op"`
	ID       string          `json:"id"`
	Channel  string          `json:"channel"`
	Since    *wirePosition   `json:"since"`
	Data     json.RawMessage `json:"data"`
	Presence bool            `json:"presence"` // subscribe: also receive join and leave
}

type wirePosition struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// frameError is why a client frame was refused: an error frame's code and
// message.
type frameError struct {
	code, msg string
}

func (e *frameError) Error() string { return e.code + ": " + e.msg }

// decodeClientFrame parses and checks one client frame. On error the
// returned frame still carries the id and channel, when they could be read,
// for the error frame.
func decodeClientFrame(b []byte, maxData int) (clientFrame, *frameError) {
	var f clientFrame
	if !utf8.Valid(b) {
		return f, &frameError{codeBadRequest, "frame is not valid UTF-8"}
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return f, &frameError{codeBadRequest, "frame must be a JSON object"}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		f = clientFrame{}
		return f, &frameError{codeBadRequest, "malformed frame: " + trimErr(err)}
	}
	if len(f.ID) > maxIDLen {
		f.ID = ""
		return f, &frameError{codeBadRequest, "id must be at most " + strconv.Itoa(maxIDLen) + " bytes"}
	}
	switch f.Op {
	case opSubscribe, opUnsubscribe, opPublish, opPresence:
	case "":
		return f, &frameError{codeBadRequest, `missing "op"`}
	default:
		return f, &frameError{codeBadRequest, "unknown op " + strconv.Quote(truncate(f.Op, 32))}
	}
	if err := checkChannel(f.Channel); err != nil {
		ch := f.Channel
		f.Channel = ""
		if len(ch) <= MaxChannelLen && utf8.ValidString(ch) {
			f.Channel = ch
		}
		return f, &frameError{codeBadRequest, strings.TrimPrefix(err.Error(), ErrInvalidArgument.Error()+": ")}
	}
	if f.Since != nil && f.Op != opSubscribe {
		return f, &frameError{codeBadRequest, `"since" is only for subscribe`}
	}
	if f.Since != nil && len(f.Since.Epoch) > 64 {
		return f, &frameError{codeBadRequest, "since.epoch must be at most 64 bytes"}
	}
	if f.Op == opPublish {
		if len(f.Data) == 0 {
			return f, &frameError{codeBadRequest, `publish needs "data"`}
		}
		if len(f.Data) > maxData {
			return f, &frameError{codeTooLarge, "data is " + strconv.Itoa(len(f.Data)) + " bytes, the limit is " + strconv.Itoa(maxData)}
		}
	} else if len(f.Data) > 0 {
		return f, &frameError{codeBadRequest, `"data" is only for publish`}
	}
	return f, nil
}

func trimErr(err error) string { return truncate(strings.TrimPrefix(err.Error(), "json: "), 120) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func appendHead(b []byte, op, id, channel string) []byte {
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, '"')
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, id)
	}
	if channel != "" {
		b = append(b, `,"channel":`...)
		b = appendString(b, channel)
	}
	return b
}

func appendPos(b []byte, p Position) []byte {
	b = append(b, `,"epoch":`...)
	b = appendString(b, p.Epoch)
	b = append(b, `,"offset":`...)
	return strconv.AppendUint(b, p.Offset, 10)
}

// encodeMessage returns the message frame of a publication:
// {"op":"message","channel":c,"data":d,"epoch":e,"offset":n}.
func encodeMessage(e *event) []byte {
	b := make([]byte, 0, len(e.data)+len(e.channel)+64)
	b = appendHead(b, "message", "", e.channel)
	b = append(b, `,"data":`...)
	b = append(b, e.data...)
	b = appendPos(b, e.pos)
	return append(b, '}')
}

// encodeMember returns the join or leave frame of e.
func encodeMember(e *event) []byte {
	op := "join"
	if e.kind == Leave {
		op = "leave"
	}
	b := appendHead(make([]byte, 0, 128), op, "", e.channel)
	b = append(b, `,"member":`...)
	b = appendMember(b, e.member)
	return append(b, '}')
}

func appendMember(b []byte, m Member) []byte {
	b = append(b, `{"client":`...)
	b = appendString(b, m.ClientID)
	if m.UserID != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, m.UserID)
	}
	if m.Node != "" {
		b = append(b, `,"node":`...)
		b = appendString(b, m.Node)
	}
	if len(m.Info) > 0 {
		b = append(b, `,"info":`...)
		b = append(b, m.Info...)
	}
	return append(b, '}')
}

// wsFrame returns e's WebSocket frame, built once for all connections.
func (e *event) wsFrame() []byte {
	e.wsOnce.Do(func() {
		switch e.kind {
		case Publication:
			e.ws = encodeMessage(e)
		case Join, Leave:
			e.ws = encodeMember(e)
		}
	})
	return e.ws
}

func encodeSubscribed(id, channel string, p Position, recovered bool) []byte {
	b := appendHead(make([]byte, 0, 96), "subscribed", id, channel)
	b = appendPos(b, p)
	b = append(b, `,"recovered":`...)
	b = strconv.AppendBool(b, recovered)
	return append(b, '}')
}

func encodeUnsubscribed(id, channel string) []byte {
	return append(appendHead(make([]byte, 0, 64), "unsubscribed", id, channel), '}')
}

func encodePublished(id, channel string, p Position) []byte {
	b := appendHead(make([]byte, 0, 96), "published", id, channel)
	b = appendPos(b, p)
	return append(b, '}')
}

func encodeResync(channel string) []byte {
	return append(appendHead(make([]byte, 0, 64), "resync", "", channel), '}')
}

func encodePresence(id, channel string, ms []Member) []byte {
	b := appendHead(make([]byte, 0, 64+len(ms)*64), "presence", id, channel)
	b = append(b, `,"members":[`...)
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMember(b, m)
	}
	return append(b, "]}"...)
}

func encodeError(id, channel, code, msg string) []byte {
	b := appendHead(make([]byte, 0, 96+len(msg)), "error", id, channel)
	b = append(b, `,"code":"`...)
	b = append(b, code...)
	b = append(b, `","message":`...)
	b = appendString(b, msg)
	return append(b, '}')
}

// SSE event IDs encode the position of every channel of the stream, in the
// order of the request's channel parameters: "<epoch>-<offset>" joined by
// '.', e.g. "3f9a0c21be-12.77d1e0a4c3-0". An empty element is "no position".

// maxSSEIDLen bounds a Last-Event-ID.
const maxSSEIDLen = 8192

// encodeSSEID returns the event ID of positions.
func encodeSSEID(ps []Position) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('.')
		}
		if p.IsZero() {
			continue
		}
		b.WriteString(p.Epoch)
		b.WriteByte('-')
		b.WriteString(strconv.FormatUint(p.Offset, 10))
	}
	return b.String()
}

// parseSSEID reads an event ID for n channels.
func parseSSEID(id string, n int) ([]Position, error) {
	if len(id) > maxSSEIDLen {
		return nil, invalidf("event ID is %d bytes, over %d", len(id), maxSSEIDLen)
	}
	parts := strings.Split(id, ".")
	if len(parts) != n {
		return nil, invalidf("event ID has %d positions for %d channels", len(parts), n)
	}
	out := make([]Position, n)
	for i, p := range parts {
		if p == "" {
			continue
		}
		j := strings.LastIndexByte(p, '-')
		if j <= 0 || j > 64 {
			return nil, invalidf("event ID position %d is not <epoch>-<offset>", i)
		}
		for _, c := range []byte(p[:j]) {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
				return nil, invalidf("event ID position %d has a bad epoch", i)
			}
		}
		off, err := strconv.ParseUint(p[j+1:], 10, 64)
		if err != nil {
			return nil, invalidf("event ID position %d has a bad offset", i)
		}
		out[i] = Position{Epoch: p[:j], Offset: off}
	}
	return out, nil
}

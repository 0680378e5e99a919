// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// Field is one header field: its name as written and its value unfolded
// (RFC 5322 2.2.3: the CRLFs removed, the white space kept), not decoded.
type Field struct {
	Name, Value string
	// Raw is the field as it was in the message (name, colon, folded
	// value, CRLF), so that WriteFields reproduces untouched fields byte
	// for byte (DKIM signatures survive); nil for a field editheader added.
	Raw []byte
}

// Message is what a script looks at: the header fields in order, the size
// and a way to read the body for the body test.
type Message struct {
	Fields []Field
	Size   int64
	// Body returns the body (everything after the blank line); it may be
	// called more than once. Nil means an empty body.
	Body func() (io.Reader, error)
}

// ReadMessage reads a whole message into memory. The worker bounds the
// size beforehand (sieve_max_message_size is not a Sieve setting).
func ReadMessage(r io.Reader) (*Message, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return ParseMessage(data)
}

// ParseMessage parses a message held in memory. A header go-message cannot
// parse (a line without a colon) ends the header there, as in delivery:
// the message is still filtered with what could be read.
func ParseMessage(data []byte) (*Message, error) {
	off := headerEnd(data)
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(data[:off])))
	m := &Message{Fields: FieldsOf(h), Size: int64(len(data))}
	body := data[off:]
	m.Body = func() (io.Reader, error) { return bytes.NewReader(body), nil }
	return m, nil
}

// headerEnd returns the offset of the body: after the first empty line.
func headerEnd(data []byte) int {
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			return len(data)
		}
		line := data[i : i+j]
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return i + j + 1
		}
		i += j + 1
	}
	return len(data)
}

// FieldsOf lists a go-message header top to bottom, unfolding each raw
// field.
func FieldsOf(h textproto.Header) []Field {
	var out []Field
	for f := h.Fields(); f.Next(); {
		raw, err := f.Raw()
		v := f.Value()
		if err == nil {
			if i := bytes.IndexByte(raw, ':'); i >= 0 {
				v = unfold(string(raw[i+1:]))
			}
		}
		fl := Field{Name: f.Key(), Value: v}
		if err == nil {
			fl.Raw = append([]byte(nil), raw...)
		}
		out = append(out, fl)
	}
	return out
}

// unfold removes line breaks and trims the value's outer white space.
// A tab that starts a continuation line becomes a space, as Pigeonhole
// unfolds.
func unfold(v string) string {
	v = strings.NewReplacer("\r\n\t", " ", "\n\t", " ", "\r\n", "", "\n", "", "\r", "").Replace(v)
	return strings.Trim(v, " \t")
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// encodedWord is an RFC 2047 encoded word.
var encodedWord = regexp.MustCompile(`=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=`)

// decodeHeader decodes RFC 2047 encoded words one by one, as Pigeonhole
// does: white space between two encoded words goes, a word in an unknown
// charset keeps its decoded bytes, and text that only looks like an
// encoded word stays as it is.
func decodeHeader(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	locs := encodedWord.FindAllStringIndex(v, -1)
	if locs == nil {
		return v
	}
	var b strings.Builder
	last := 0
	for i, l := range locs {
		gap := v[last:l[0]]
		if i > 0 && strings.Trim(gap, " \t") == "" {
			gap = ""
		}
		b.WriteString(gap)
		b.WriteString(decodeWord(v[l[0]:l[1]]))
		last = l[1]
	}
	tail := v[last:]
	// Pigeonhole also drops the white space between an encoded word and
	// a malformed one ("=?" that does not close).
	if t := strings.TrimLeft(tail, " \t"); strings.HasPrefix(t, "=?") {
		tail = t
	}
	b.WriteString(tail)
	return b.String()
}

func decodeWord(w string) string {
	if d, err := wordDecoder.Decode(w); err == nil {
		return d
	}
	parts := strings.SplitN(w[2:len(w)-2], "?", 3)
	if len(parts) != 3 {
		return w
	}
	var data []byte
	switch strings.ToLower(parts[1]) {
	case "b":
		d, err := base64.StdEncoding.DecodeString(parts[2])
		if err != nil {
			if d, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(parts[2], "=")); err != nil {
				return w
			}
		}
		data = d
	default:
		q := strings.ReplaceAll(parts[2], "_", " ")
		for i := 0; i < len(q); i++ {
			if q[i] == '=' && i+2 < len(q) {
				if c, err := strconv.ParseUint(q[i+1:i+3], 16, 8); err == nil {
					data = append(data, byte(c))
					i += 2
					continue
				}
			}
			data = append(data, q[i])
		}
	}
	if utf8.Valid(data) {
		return string(data)
	}
	// Unknown charset and not UTF-8: read it as Latin-1 so that the
	// value stays valid UTF-8.
	r := make([]rune, len(data))
	for i, c := range data {
		r[i] = rune(c)
	}
	return string(r)
}

// parsedAddr is one address of a header or envelope: the address itself,
// or raw text that does not parse (matched only by :all).
type parsedAddr struct {
	local, domain string
	raw           string
	valid         bool
}

func (a parsedAddr) all() string {
	if !a.valid {
		return a.raw
	}
	local := a.local
	if !isDotAtom(local) {
		local = strconv.Quote(local)
	}
	if a.domain == "" {
		return local
	}
	return local + "@" + a.domain
}

// isDotAtom reports whether a local part can be written without quotes
// (RFC 5322 3.2.3).
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 ||
			strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", c)) {
			return false
		}
	}
	return true
}

// parseAddressList splits an address header into addresses, keeping what
// does not parse as raw text so that :all can still match it.
func parseAddressList(v string) []parsedAddr {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	v = obsRoute.ReplaceAllString(v, "<")
	p := mail.AddressParser{WordDecoder: wordDecoder}
	if list, err := p.ParseList(v); err == nil && len(list) == 0 {
		// Only empty groups ("undisclosed-recipients:;"): Pigeonhole then
		// sees the raw text, for :all.
		return []parsedAddr{{raw: v}}
	} else if err == nil {
		out := make([]parsedAddr, 0, len(list))
		for _, a := range list {
			out = append(out, splitAddr(a.Address))
		}
		return out
	}
	var out []parsedAddr
	for _, part := range splitTopLevel(v) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if a, err := p.Parse(part); err == nil {
			out = append(out, splitAddr(a.Address))
		} else if bare, err := parseAddrSpec(part); err == nil {
			out = append(out, bare)
		} else {
			out = append(out, parsedAddr{raw: part})
		}
	}
	return out
}

// obsRoute matches RFC 5322's obsolete source route ("<@relay:user@host>"),
// which net/mail refuses and which means just the address.
var obsRoute = regexp.MustCompile(`<\s*@[^<>:"]*:`)

// splitTopLevel splits on commas outside quotes, comments and angle
// brackets.
func splitTopLevel(v string) []string {
	var parts []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(' || c == '<':
			depth++
		case (c == ')' || c == '>') && depth > 0:
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, v[start:i])
			start = i + 1
		}
	}
	return append(parts, v[start:])
}

func splitAddr(addr string) parsedAddr {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return parsedAddr{local: addr, raw: addr, valid: true}
	}
	return parsedAddr{local: addr[:i], domain: addr[i+1:], raw: addr, valid: true}
}

// parseAddrSpec parses a bare "local@domain" (redirect, :addresses,
// envelope), with or without angle brackets.
func parseAddrSpec(s string) (parsedAddr, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "<") && strings.HasSuffix(t, ">") {
		t = t[1 : len(t)-1]
	}
	if t == "" {
		return parsedAddr{}, fmt.Errorf("empty address")
	}
	a, err := mail.ParseAddress("<" + t + ">")
	if err != nil {
		return parsedAddr{}, fmt.Errorf("not an address")
	}
	return splitAddr(a.Address), nil
}

// parseMailbox parses "Name <addr>" or a bare address (vacation :from).
func parseMailbox(s string) (*mail.Address, error) {
	p := mail.AddressParser{WordDecoder: wordDecoder}
	a, err := p.Parse(s)
	if err != nil {
		if b, err2 := parseAddrSpec(s); err2 == nil {
			return &mail.Address{Address: b.all()}, nil
		}
		return nil, fmt.Errorf("not an address")
	}
	return a, nil
}

// bodyPart is one leaf of the MIME tree for the body test.
type bodyPart struct {
	mediaType string // "text/plain"
	content   string // decoded (transfer encoding and charset)
}

// maxBodyParts bounds how many MIME parts the body test walks.
const maxBodyParts = 1000

// mimeParts decodes the message's MIME leaves with go-message. A part that
// fails to decode is passed on raw.
func (m *Message) mimeParts() ([]bodyPart, error) {
	var h message.Header
	for i := len(m.Fields) - 1; i >= 0; i-- {
		h.Add(m.Fields[i].Name, m.Fields[i].Value)
	}
	body, err := m.body()
	if err != nil {
		return nil, err
	}
	var parts []bodyPart
	var walk func(e *message.Entity, depth int) error
	walk = func(e *message.Entity, depth int) error {
		if len(parts) >= maxBodyParts || depth > 20 {
			return nil
		}
		t, _, err := e.Header.ContentType()
		if err != nil || t == "" {
			t = "text/plain"
		}
		if strings.HasPrefix(t, "multipart/") {
			return walkMultipart(e, t, depth, &parts, walk)
		}
		if t == "message/rfc822" {
			// The enclosed message is a part itself (its header and raw
			// body), then its own parts are walked.
			raw, _ := io.ReadAll(io.LimitReader(e.Body, 64<<20))
			parts = append(parts, bodyPart{mediaType: t, content: string(raw)})
			inner, err := message.Read(bytes.NewReader(raw))
			if inner != nil && (err == nil || message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)) {
				return walk(inner, depth+1)
			}
			return nil
		}
		data, _ := io.ReadAll(io.LimitReader(e.Body, 64<<20))
		parts = append(parts, bodyPart{mediaType: strings.ToLower(t), content: string(data)})
		return nil
	}
	// An unknown charset or encoding still gives an entity, read raw.
	e, _ := message.New(h, body)
	if e == nil {
		data, _ := io.ReadAll(body)
		return []bodyPart{{mediaType: "text/plain", content: string(data)}}, nil
	}
	return parts, walk(e, 0)
}

func (m *Message) body() (io.Reader, error) {
	if m.Body == nil {
		return strings.NewReader(""), nil
	}
	return m.Body()
}

// walkMultipart records a multipart's prologue and epilogue as its own
// content (RFC 5173 5.2: :content "multipart" matches them), then walks
// its parts.
func walkMultipart(e *message.Entity, t string, depth int, parts *[]bodyPart, walk func(*message.Entity, int) error) error {
	_, params, _ := e.Header.ContentType()
	boundary := params["boundary"]
	data, _ := io.ReadAll(io.LimitReader(e.Body, 64<<20))
	if boundary == "" {
		*parts = append(*parts, bodyPart{mediaType: t, content: string(data)})
		return nil
	}
	delim := "--" + boundary
	var outside strings.Builder
	text := string(data)
	if i := strings.Index(text, delim); i >= 0 {
		outside.WriteString(text[:i])
		if j := strings.LastIndex(text, delim+"--"); j >= 0 {
			rest := text[j+len(delim)+2:]
			outside.WriteString(strings.TrimLeft(rest, "\r\n"))
		}
	}
	*parts = append(*parts, bodyPart{mediaType: t, content: outside.String()})
	mr := textproto.NewMultipartReader(bytes.NewReader(data), boundary)
	for len(*parts) < maxBodyParts {
		p, err := mr.NextPart()
		if err != nil {
			return nil // the end, or a broken multipart: stop here
		}
		pe, err := message.New(message.Header{Header: p.Header}, p)
		if pe == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
			continue
		}
		if err := walk(pe, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// WriteFields writes a header (as Result.Header after editheader): raw
// fields as they were, new ones folded at white space before 78 columns.
// It does not write the blank line that ends the header.
func WriteFields(w io.Writer, fields []Field) error {
	for _, f := range fields {
		line := f.Raw
		if line == nil {
			line = []byte(foldField(f.Name, f.Value))
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return nil
}

func foldField(name, value string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(":")
	col := len(name) + 1
	for i, word := range strings.Split(value, " ") {
		if i > 0 && col+1+len(word) > 78 {
			b.WriteString("\r\n")
			col = 0
		}
		b.WriteString(" ")
		b.WriteString(word)
		col += 1 + len(word)
	}
	b.WriteString("\r\n")
	return b.String()
}

// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"fmt"
	"html"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func (r *run) test(f *frame, x *cmd) (bool, error) {
	switch x.name {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "not":
		ok, err := r.test(f, x.tests[0])
		return !ok, err
	case "allof", "anyof":
		want := x.name == "anyof"
		for _, t := range x.tests {
			ok, err := r.test(f, t)
			if err != nil || ok == want {
				return ok, err
			}
		}
		return !want, nil
	case "exists":
		for _, h := range r.strs(f, x.args[0].strs) {
			if len(r.headerValues(h)) == 0 {
				return false, nil
			}
		}
		return true, nil
	case "size":
		n := int64(x.args[0].num)
		if x.has("over") {
			return r.env.Message.Size > n, nil
		}
		return r.env.Message.Size < n, nil
	case "header":
		var values []string
		for _, h := range r.strs(f, x.args[0].strs) {
			values = append(values, r.index(x, r.headerValues(h))...)
		}
		for i := range values {
			values[i] = decodeHeader(values[i])
		}
		return r.match(f, x, values, x.args[1].strs)
	case "address":
		var values []string
		for _, h := range r.strs(f, x.args[0].strs) {
			raws := r.index(x, r.headerValues(h))
			for _, raw := range raws {
				for _, a := range parseAddressList(raw) {
					if v, ok := r.addressPart(x.part, a); ok {
						values = append(values, v)
					}
				}
			}
		}
		return r.match(f, x, values, x.args[1].strs)
	case "envelope":
		var values []string
		for _, p := range r.strs(f, x.args[0].strs) {
			var addr string
			switch strings.ToLower(p) {
			case "from":
				addr = r.env.Envelope.From
			case "to":
				addr = r.env.Envelope.To
			case "auth":
				addr = r.env.Envelope.Auth
				if addr == "" {
					continue
				}
			default:
				continue
			}
			if addr == "" {
				// The null sender: only :all sees it, as "" (RFC 5228 5.4).
				if x.part == "all" {
					values = append(values, "")
				}
				continue
			}
			a, err := parseAddrSpec(addr)
			if err != nil {
				a = parsedAddr{raw: addr}
			}
			if v, ok := r.addressPart(x.part, a); ok {
				values = append(values, v)
			}
		}
		return r.match(f, x, values, x.args[1].strs)
	case "string":
		values := r.strs(f, x.args[0].strs)
		if x.match == "count" {
			// RFC 5229 5: empty strings are not counted.
			var nonEmpty []string
			for _, v := range values {
				if v != "" {
					nonEmpty = append(nonEmpty, v)
				}
			}
			values = nonEmpty
		}
		return r.match(f, x, values, x.args[1].strs)
	case "body":
		return r.body(f, x)
	case "hasflag":
		var flags []string
		if len(x.args) == 2 {
			for _, v := range r.strs(f, x.args[0].strs) {
				flags = append(flags, strings.Fields(r.getVar(f, v))...)
			}
		} else {
			flags = r.flags
		}
		return r.match(f, x, flags, x.args[len(x.args)-1].strs)
	case "environment":
		v, ok := r.environment(strings.ToLower(r.expand(f, x.args[0].strs[0])))
		if !ok {
			return false, nil
		}
		return r.match(f, x, []string{v}, x.args[1].strs)
	case "mailboxexists":
		if r.env.Mailboxes == nil {
			return false, nil
		}
		for _, m := range r.strs(f, x.args[0].strs) {
			ok, err := r.env.Mailboxes.MailboxExists(r.ctx, m)
			if err != nil {
				return false, r.fail(f, x, "mailboxexists: %v", err)
			}
			if !ok {
				return false, nil
			}
		}
		return true, nil
	case "date", "currentdate":
		return r.date(f, x)
	case "duplicate":
		return r.duplicate(f, x)
	}
	return false, r.fail(f, x, "unknown test %s", x.name)
}

func (r *run) strs(f *frame, in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = r.expand(f, s)
	}
	return out
}

// headerValues returns the values of a field, top to bottom.
func (r *run) headerValues(name string) []string {
	var out []string
	for _, fl := range r.fields {
		if strings.EqualFold(fl.Name, name) {
			out = append(out, fl.Value)
		}
	}
	return out
}

// index applies :index/:last (RFC 5260 6): one occurrence, counted from
// the top or, with :last, from the bottom.
func (r *run) index(x *cmd, values []string) []string {
	a, ok := x.tags["index"]
	if !ok {
		return values
	}
	n := int(a.num)
	if n < 1 || n > len(values) {
		return nil
	}
	if x.has("last") {
		return values[len(values)-n : len(values)-n+1]
	}
	return values[n-1 : n]
}

func (r *run) addressPart(part string, a parsedAddr) (string, bool) {
	switch part {
	case "all":
		return a.all(), true
	case "localpart":
		return a.local, a.valid
	case "domain":
		return a.domain, a.valid
	case "user", "detail":
		if !a.valid {
			return "", false
		}
		i := strings.Index(a.local, r.sep)
		if part == "user" {
			if i < 0 {
				return a.local, true
			}
			return a.local[:i], true
		}
		if i < 0 {
			return "", false // RFC 5233 4: no detail, no match
		}
		return a.local[i+len(r.sep):], true
	}
	return "", false
}

// match compares values against keys with the test's comparator and match
// type; a :matches or :regex success sets the match variables.
func (r *run) match(f *frame, x *cmd, values, keys []string) (bool, error) {
	cmp := comparators[x.cmpName]
	keys = r.strs(f, keys)
	if x.match == "count" {
		n := strconv.Itoa(len(values))
		for _, k := range keys {
			if relHolds(x.rel, cmp.compare(n, k)) {
				return true, nil
			}
		}
		return false, nil
	}
	for _, v := range values {
		if r.steps++; r.steps&255 == 0 {
			if err := r.cpuCheck(f, x); err != nil {
				return false, err
			}
		}
		for ki, k := range keys {
			switch x.match {
			case "is":
				if cmp.compare(v, k) == 0 && (cmp.numeric || cmp.norm(v) == cmp.norm(k)) {
					return true, nil
				}
			case "contains":
				if cmp.contains(v, k) {
					return true, nil
				}
			case "value":
				if relHolds(x.rel, cmp.compare(v, k)) {
					return true, nil
				}
			case "matches":
				caps, ok, err := cmp.wildcard(v, k, func() error { return r.cpuCheck(f, x) })
				if err != nil {
					return false, err
				}
				if ok {
					r.setMatch(f, caps)
					return true, nil
				}
			case "regex":
				re, err := r.regexFor(f, x, ki, k)
				if err != nil {
					return false, err
				}
				if caps := re.FindStringSubmatch(v); caps != nil {
					r.setMatch(f, caps)
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// regexFor returns the compiled key: precompiled when it was literal.
func (r *run) regexFor(f *frame, x *cmd, i int, key string) (*regexp.Regexp, error) {
	if i < len(x.regexes) {
		return x.regexes[i], nil
	}
	re, err := compileRegex(key, x.cmpName)
	if err != nil {
		return nil, r.fail(f, x, "invalid regular expression %q: %v", key, err)
	}
	return re, nil
}

func (r *run) setMatch(f *frame, caps []string) {
	if f.s.exts["variables"] {
		r.matchVars = caps
	}
}

func (r *run) environment(name string) (string, bool) {
	if v, ok := r.env.Environment[name]; ok {
		return v, true
	}
	switch name {
	case "location":
		return "MDA", true
	case "phase":
		return "during", true
	case "name":
		return "vlmtpd", true
	case "version":
		return "1.0", true
	}
	return "", false
}

func (r *run) body(f *frame, x *cmd) (bool, error) {
	var values []string
	switch {
	case x.has("raw"):
		if r.rawBody == nil {
			b, err := r.env.Message.body()
			if err != nil {
				return false, r.fail(f, x, "body: %v", err)
			}
			data, err := io.ReadAll(io.LimitReader(b, 64<<20))
			if err != nil {
				return false, r.fail(f, x, "body: %v", err)
			}
			s := string(data)
			r.rawBody = &s
		}
		values = []string{*r.rawBody}
	default:
		types := []string{"text"}
		if a, ok := x.tags["content"]; ok {
			types = r.strs(f, a.strs)
		}
		// The body is decoded once per run, whatever the number of tests.
		if r.parts == nil {
			parts, err := r.env.Message.mimeParts()
			if err != nil {
				return false, r.fail(f, x, "body: %v", err)
			}
			r.parts = &parts
		}
		for _, p := range *r.parts {
			if !contentMatches(p.mediaType, types) {
				continue
			}
			c := p.content
			if !x.has("content") && p.mediaType == "text/html" {
				c = htmlToText(c)
			}
			values = append(values, c)
		}
	}
	// RFC 5173 5: the body test does not set match variables.
	saved := r.matchVars
	ok, err := r.match(f, x, values, x.args[0].strs)
	r.matchVars = saved
	return ok, err
}

// contentMatches is body :content's type list: "" matches every part,
// "text" every text/*, "text/plain" just that.
func contentMatches(mediaType string, types []string) bool {
	main, _, _ := strings.Cut(mediaType, "/")
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		switch {
		case t == "":
			return true
		case strings.Contains(t, "/"):
			if t == mediaType {
				return true
			}
		case t == main:
			return true
		}
	}
	return false
}

// htmlToText drops tags and decodes entities, as Pigeonhole's :text does
// for text/html, so that keys match what the reader sees.
func htmlToText(s string) string {
	var b strings.Builder
	in := false
	for _, c := range s {
		switch {
		case c == '<':
			in = true
		case c == '>' && in:
			in = false
		case !in:
			b.WriteRune(c)
		}
	}
	return html.UnescapeString(b.String())
}

func (r *run) duplicate(f *frame, x *cmd) (bool, error) {
	var id string
	if u, ok := x.tagStr("uniqueid"); ok {
		id = r.expand(f, u)
	} else {
		h := "Message-ID"
		if hn, ok := x.tagStr("header"); ok {
			h = r.expand(f, hn)
		}
		vals := r.headerValues(h)
		if len(vals) == 0 {
			return false, nil // RFC 7352 3.1: no ID, not a duplicate
		}
		id = strings.TrimSpace(vals[0])
	}
	handle, _ := x.tagStr("handle")
	handle = r.expand(f, handle)
	key := duplicateKey(handle, id)
	period := 7 * 24 * time.Hour // Pigeonhole's sieve_duplicate_default_period
	if a, ok := x.tags["seconds"]; ok {
		period = time.Duration(a.num) * time.Second
		if max := 7 * 24 * time.Hour; period > max {
			period = max
		}
	}
	// The same ID and handle tested again in this run gives the same
	// answer: the message is not a duplicate of itself.
	if seen, ok := r.dupSeen[key]; ok {
		return seen, nil
	}
	seen := false
	if r.env.Duplicates != nil {
		var err error
		if seen, err = r.env.Duplicates.Seen(r.ctx, key); err != nil {
			return false, r.fail(f, x, "duplicate: %v", err)
		}
	}
	if r.dupSeen == nil {
		r.dupSeen = map[string]bool{}
	}
	r.dupSeen[key] = seen
	r.res.Duplicates = append(r.res.Duplicates, DuplicateMark{Key: key, Handle: handle, Period: period, Last: x.has("last")})
	return seen, nil
}

// cpuCheck ends the run when its context is done (sieve_max_cpu_time).
func (r *run) cpuCheck(f *frame, x *cmd) error {
	if err := r.ctx.Err(); err != nil {
		return &RuntimeError{Script: f.s.name, Pos: x.pos, Err: fmt.Errorf("%w: CPU time: %v", ErrLimit, err)}
	}
	return nil
}

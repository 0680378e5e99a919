// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"mime"
	"strings"
)

// protectedHeader reports fields RFC 5293 section 6 (and Pigeonhole) keep
// out of reach of editheader: the trace and the loop-prevention fields.
func protectedHeader(name string) bool {
	return strings.EqualFold(name, "Received") || strings.EqualFold(name, "Auto-Submitted")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (r *run) addHeader(f *frame, x *cmd) error {
	name := r.expand(f, x.args[0].strs[0])
	value := r.expand(f, x.args[1].strs[0])
	if !validHeaderName(name) {
		return r.fail(f, x, "addheader: invalid header name %q", name)
	}
	if protectedHeader(name) {
		return nil // silently ignored, as Pigeonhole does
	}
	// Line breaks would let a script forge fields; non-ASCII is encoded
	// (RFC 5293 4: the value is stored "as if" RFC 2047-encoded).
	value = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(value)
	if !isASCII(value) {
		value = mime.QEncoding.Encode("utf-8", value)
	}
	fl := Field{Name: name, Value: value}
	if x.has("last") {
		r.fields = append(r.fields, fl)
	} else {
		r.fields = append([]Field{fl}, r.fields...)
	}
	r.edited = true
	r.res.Actions = append(r.res.Actions, &AddHeader{Name: name, Value: value, Last: x.has("last")})
	return nil
}

func (r *run) deleteHeader(f *frame, x *cmd) error {
	name := r.expand(f, x.args[0].strs[0])
	if !validHeaderName(name) {
		return r.fail(f, x, "deleteheader: invalid header name %q", name)
	}
	if protectedHeader(name) {
		return nil
	}
	var idx []int // positions in r.fields of this field, top to bottom
	for i, fl := range r.fields {
		if strings.EqualFold(fl.Name, name) {
			idx = append(idx, i)
		}
	}
	if a, ok := x.tags["index"]; ok {
		n := int(a.num)
		if n < 1 || n > len(idx) {
			return nil
		}
		if x.has("last") {
			idx = idx[len(idx)-n : len(idx)-n+1]
		} else {
			idx = idx[n-1 : n]
		}
	}
	drop := map[int]bool{}
	for _, i := range idx {
		if len(x.args) == 2 {
			saved := r.matchVars
			ok, err := r.match(f, x, []string{decodeHeader(r.fields[i].Value)}, x.args[1].strs)
			r.matchVars = saved
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		drop[i] = true
	}
	if len(drop) == 0 {
		return nil
	}
	kept := r.fields[:0:0]
	for i, fl := range r.fields {
		if !drop[i] {
			kept = append(kept, fl)
		}
	}
	r.fields = kept
	r.edited = true
	r.res.Actions = append(r.res.Actions, &DeleteHeader{Name: name, Deleted: len(drop)})
	return nil
}

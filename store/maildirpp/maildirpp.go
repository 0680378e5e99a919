// Runs in: a worker, as the mailbox owner.

// Package maildirpp reads and keeps up to date the Maildir++ quota file,
// maildirsize, as Courier's maildirquota(7) defines it and Dovecot's
// "maildir" quota backend reads and writes it: a first line with the
// limits ("NS", "NC" or "NS,MC"), then one "bytes count" line per change.
//
// Written by hand: no Go library implements Maildir++ quota, and the file
// must follow exactly the rules Courier and Dovecot apply so that all
// three agree on a mailbox's usage.
//
// Every name is opened relative to a Maildir directory descriptor, one
// component at a time, with O_NOFOLLOW: a symlink planted by the mailbox
// owner is never followed.
package maildirpp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FileName is the quota file's name in the Maildir's root.
const FileName = "maildirsize"

// MaxFileSize is the size beyond which the file is rebuilt instead of
// read: maildirquota(7) and Dovecot both use 5120 bytes.
const MaxFileSize = 5120

// StaleAge is how old a file showing the mailbox over quota may be before
// it is no longer trusted (maildirquota(7): 15 minutes).
const StaleAge = 15 * time.Minute

// Limits are a quota: bytes and message count, 0 meaning no limit.
type Limits struct {
	Bytes, Count int64
}

// None reports whether neither limit is set.
func (l Limits) None() bool { return l.Bytes == 0 && l.Count == 0 }

// ParseLimits reads a quota as virtual_mailbox_limit_maps gives it: a
// plain number of bytes ("52428800"), or Maildir++ form "NS", "NC",
// "NS,MC" (either order). "0" and "0S" mean no quota.
func ParseLimits(s string) (Limits, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Limits{}, errors.New("empty quota")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return Limits{}, fmt.Errorf("quota %q is negative", s)
		}
		return Limits{Bytes: n}, nil
	}
	var l Limits
	seen := map[byte]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if len(part) < 2 {
			return Limits{}, fmt.Errorf("quota %q: %q is not NS or NC", s, part)
		}
		unit := part[len(part)-1]
		n, err := strconv.ParseInt(part[:len(part)-1], 10, 64)
		if err != nil || n < 0 || part[0] == '+' {
			return Limits{}, fmt.Errorf("quota %q: %q is not a number of bytes (S) or messages (C)", s, part)
		}
		if seen[unit] {
			return Limits{}, fmt.Errorf("quota %q: %c given twice", s, unit)
		}
		seen[unit] = true
		switch unit {
		case 'S':
			l.Bytes = n
		case 'C':
			l.Count = n
		default:
			return Limits{}, fmt.Errorf("quota %q: unit %q is not S (bytes) or C (messages)", s, unit)
		}
	}
	return l, nil
}

// Line is the limits as the first line of maildirsize says them, the way
// Dovecot writes it: "NS", "NC" or "NS,MC", and "0S" for no limit.
func (l Limits) Line() string {
	var b []byte
	if l.Bytes != 0 || l.Count == 0 {
		b = strconv.AppendInt(b, l.Bytes, 10)
		b = append(b, 'S')
	}
	if l.Count != 0 {
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, l.Count, 10)
		b = append(b, 'C')
	}
	return string(b)
}

func (l Limits) String() string {
	if l.None() {
		return "none"
	}
	var parts []string
	if l.Bytes > 0 {
		parts = append(parts, strconv.FormatInt(l.Bytes, 10)+" bytes")
	}
	if l.Count > 0 {
		parts = append(parts, strconv.FormatInt(l.Count, 10)+" messages")
	}
	return strings.Join(parts, ", ")
}

// Usage is what a mailbox holds: bytes and messages.
type Usage struct {
	Bytes, Count int64
}

// Over reports whether u is beyond the limits l (a usage equal to a limit
// is not over it).
func (u Usage) Over(l Limits) bool {
	return (l.Bytes > 0 && u.Bytes > l.Bytes) || (l.Count > 0 && u.Count > l.Count)
}

// Fits reports whether one more message of size bytes keeps u within l:
// an exact fit fits.
func (u Usage) Fits(size int64, l Limits) bool {
	return !(Usage{u.Bytes + size, u.Count + 1}).Over(l)
}

// File is a parsed maildirsize.
type File struct {
	// Limits is the first line as read (0 for an unknown or missing part).
	Limits Limits
	// LimitsLine is the first line itself.
	LimitsLine string
	// Usage is the sum of the usage lines.
	Usage Usage
	// Lines is the number of usage lines.
	Lines int
}

// Reason says why a maildirsize cannot be used as it is; "" when it can.
type Reason string

const (
	Fine           Reason = ""
	Missing        Reason = "missing"
	TooLarge       Reason = "larger than 5120 bytes"
	Malformed      Reason = "malformed"
	Negative       Reason = "negative total"
	LimitsDiffer   Reason = "limits differ from the configured quota"
	StaleOverQuota Reason = "over quota and older than 15 minutes"
	// OverQuotaLines: over quota with more than one usage line. Dovecot
	// does not trust such a file either, so neither do we.
	OverQuotaLines Reason = "over quota with more than one usage line"
)

// Parse reads a maildirsize's contents. A last line without its LF (a
// writer that died mid-line) is ignored, as Dovecot does; anything else
// that is not a limits line followed by "bytes count" lines is Malformed.
func Parse(data []byte) (File, Reason) {
	if len(data) >= MaxFileSize {
		return File{}, TooLarge
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return File{}, Malformed
	}
	// Drop an unterminated last line.
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return File{}, Malformed
	}
	lines := strings.Split(string(data[:end]), "\n")
	var f File
	f.LimitsLine = lines[0]
	lim, ok := parseLimitsLine(lines[0])
	if !ok {
		return File{}, Malformed
	}
	f.Limits = lim
	for _, ln := range lines[1:] {
		b, c, ok := parseUsageLine(ln)
		if !ok {
			return File{}, Malformed
		}
		// Saturate instead of wrapping: a hostile file of huge numbers
		// reads as huge, never as small or negative.
		f.Usage.Bytes = satAdd(f.Usage.Bytes, b)
		f.Usage.Count = satAdd(f.Usage.Count, c)
		f.Lines++
	}
	if f.Usage.Bytes < 0 || f.Usage.Count < 0 {
		return f, Negative
	}
	if f.Lines == 0 {
		return f, Malformed
	}
	return f, Fine
}

// parseLimitsLine reads the first line: comma-separated NS / NC parts.
// An empty line is allowed (no limits); unknown parts make it malformed.
func parseLimitsLine(s string) (Limits, bool) {
	var l Limits
	if strings.TrimSpace(s) == "" {
		return l, true
	}
	for part := range strings.SplitSeq(s, ",") {
		if len(part) < 2 {
			return Limits{}, false
		}
		n, err := strconv.ParseUint(part[:len(part)-1], 10, 64)
		if err != nil {
			return Limits{}, false
		}
		v := int64(min(n, 1<<63-1))
		switch part[len(part)-1] {
		case 'S':
			l.Bytes = v
		case 'C':
			l.Count = v
		default:
			return Limits{}, false
		}
	}
	return l, true
}

// parseUsageLine reads "bytes count": two signed decimal numbers separated
// by blanks, with optional blanks around them.
func parseUsageLine(s string) (int64, int64, bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, false
	}
	b, err1 := strconv.ParseInt(f[0], 10, 64)
	c, err2 := strconv.ParseInt(f[1], 10, 64)
	return b, c, err1 == nil && err2 == nil
}

func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return 1<<63 - 1
	case a < 0 && b < 0 && s >= 0:
		return -1 << 63
	}
	return s
}

// Check says whether a parsed file, with modification time mtime, may be
// trusted for the configured limits at now, or why it must be rebuilt:
// the rules of maildirquota(7) and Dovecot.
func (f File) Check(want Limits, mtime, now time.Time) Reason {
	if f.Limits != want {
		return LimitsDiffer
	}
	if f.Usage.Over(want) {
		if f.Lines > 1 {
			return OverQuotaLines
		}
		if now.Sub(mtime) > StaleAge {
			return StaleOverQuota
		}
	}
	return Fine
}

// Contents is a freshly calculated maildirsize.
func Contents(l Limits, u Usage) []byte {
	return fmt.Appendf(nil, "%s\n%d %d\n", l.Line(), u.Bytes, u.Count)
}

// UsageLine is the line one change appends.
func UsageLine(d Usage) []byte {
	return fmt.Appendf(nil, "%d %d\n", d.Bytes, d.Count)
}

// SizeFromName reads the ,S=<bytes> a Maildir file name carries: the
// digits must end at ':' or ',' or the end of the name (else the name
// says nothing and the file must be stat'ed).
func SizeFromName(name string) (int64, bool) {
	i := strings.Index(name, ",S=")
	if i < 0 {
		return 0, false
	}
	rest := name[i+3:]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	// Like Dovecot, ",S=" with no digits before the end counts 0 bytes.
	if j < len(rest) && rest[j] != ':' && rest[j] != ',' {
		return 0, false
	}
	if j == 0 {
		return 0, true
	}
	n, err := strconv.ParseInt(rest[:j], 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

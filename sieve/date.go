// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// parseZone parses "+hhmm"/"-hhmm" (RFC 5260 4.1).
func parseZone(z string) (*time.Location, bool) {
	if len(z) != 5 || (z[0] != '+' && z[0] != '-') {
		return nil, false
	}
	for _, c := range z[1:] {
		if c < '0' || c > '9' {
			return nil, false
		}
	}
	h := int(z[1]-'0')*10 + int(z[2]-'0')
	m := int(z[3]-'0')*10 + int(z[4]-'0')
	if m > 59 {
		return nil, false
	}
	off := h*3600 + m*60
	if z[0] == '-' {
		off = -off
	}
	return time.FixedZone(z, off), true
}

// datePart formats one RFC 5260 date part.
func datePart(t time.Time, part string) (string, bool) {
	switch strings.ToLower(part) {
	case "year":
		return fmt.Sprintf("%04d", t.Year()), true
	case "month":
		return fmt.Sprintf("%02d", int(t.Month())), true
	case "day":
		return fmt.Sprintf("%02d", t.Day()), true
	case "date":
		return t.Format("2006-01-02"), true
	case "julian":
		// Modified Julian Day of the date in its zone: days since 1858-11-17.
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		epoch := time.Date(1858, 11, 17, 0, 0, 0, 0, time.UTC)
		return fmt.Sprint(int64(d.Sub(epoch).Hours()) / 24), true
	case "hour":
		return fmt.Sprintf("%02d", t.Hour()), true
	case "minute":
		return fmt.Sprintf("%02d", t.Minute()), true
	case "second":
		return fmt.Sprintf("%02d", t.Second()), true
	case "time":
		return t.Format("15:04:05"), true
	case "iso8601":
		return t.Format("2006-01-02T15:04:05-07:00"), true
	case "std11":
		return t.Format("Mon, 02 Jan 2006 15:04:05 -0700"), true
	case "zone":
		return t.Format("-0700"), true
	case "weekday":
		return fmt.Sprint(int(t.Weekday())), true
	}
	return "", false
}

func (r *run) date(f *frame, x *cmd) (bool, error) {
	var t time.Time
	partArg, keys := x.args[0], x.args[1]
	if x.name == "date" {
		partArg, keys = x.args[1], x.args[2]
		name := r.expand(f, x.args[0].strs[0])
		vals := r.index(x, r.headerValues(name))
		if len(vals) == 0 {
			return false, nil
		}
		v := decodeHeader(vals[0])
		if strings.EqualFold(name, "received") {
			if i := strings.LastIndexByte(v, ';'); i >= 0 {
				v = v[i+1:]
			}
		}
		var err error
		if t, err = mail.ParseDate(strings.TrimSpace(v)); err != nil {
			return false, nil
		}
	} else {
		t = r.now
	}
	switch z, ok := x.tagStr("zone"); {
	case ok:
		// An invalid zone is ignored (Pigeonhole warns at compile time
		// and uses the local zone).
		if loc, valid := parseZone(r.expand(f, z)); valid {
			t = t.In(loc)
		} else {
			t = t.In(r.now.Location())
		}
	case x.has("originalzone"):
	default:
		t = t.In(r.now.Location())
	}
	v, ok := datePart(t, r.expand(f, partArg.strs[0]))
	if !ok {
		return false, nil
	}
	return r.match(f, x, []string{v}, keys.strs)
}

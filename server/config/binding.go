// Runs in: every process that reads the configuration (parent, front, commands).
//
// A setting's name to its fields, its checks and its value
// written back as TOML.

package config

import (
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// fieldOf maps a setting's name to the Go name of its fields in file and
// Config, from file's toml tags. Binding by name keeps the table free of
// one setter per setting; TestTableMatchesStructs checks both ways.
var fieldOf = func() map[string]string {
	m := map[string]string{}
	t := reflect.TypeFor[file]()
	for i := range t.NumField() {
		m[t.Field(i).Tag.Get("toml")] = t.Field(i).Name
	}
	return m
}()

// field is the Config field of a known setting.
func (c *Config) field(name string) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByName(fieldOf[name])
}

// checkValues applies the table's checks of single values.
func (p *parser) checkValues(c *Config) {
	for _, sec := range sections {
		for _, s := range sec.settings {
			v := c.field(s.name)
			switch {
			case typeName(s.name) == "number":
				n := v.Int()
				switch {
				case s.max > 0 && (n < s.min || n > s.max):
					p.errorf(s.name, "must be between %d and %d%s", s.min, s.max, s.why)
				case n < s.min && s.min == 0:
					p.errorf(s.name, "must not be negative%s", s.why)
				case n < s.min:
					p.errorf(s.name, "must be at least %d%s", s.min, s.why)
				}
			case s.oneOf != nil:
				values := []string{v.String()}
				if v.Kind() == reflect.Slice {
					values = v.Interface().([]string)
				}
				for _, x := range values {
					if !slices.Contains(s.oneOf, x) {
						p.errorf(s.name, s.bad, x)
					}
				}
			}
		}
	}
}

// Names lists every setting in the documentation's order.
func Names() []string {
	var out []string
	for _, sec := range sections {
		for _, s := range sec.settings {
			out = append(out, s.name)
		}
	}
	return out
}

// Value is a setting's effective value as an administrator writes it in
// TOML (durations as strings such as "300s", lists as arrays); false for
// an unknown name.
func (c *Config) Value(name string) (string, bool) {
	if _, ok := settingsByName[name]; !ok {
		return "", false
	}
	return tomlValue(c.field(name).Interface()), true
}

func tomlValue(v any) string {
	switch v := v.(type) {
	case time.Duration:
		return tomlString(formatDuration(v))
	case os.FileMode:
		return tomlString(fmt.Sprintf("%04o", uint32(v)))
	case []netip.Prefix:
		l := make([]string, len(v))
		for i, p := range v {
			l[i] = p.String()
		}
		return tomlValue(l)
	case []string:
		l := make([]string, len(v))
		for i, s := range v {
			l[i] = tomlString(s)
		}
		return "[" + strings.Join(l, ", ") + "]"
	case string:
		return tomlString(v)
	default: // numbers and booleans
		return fmt.Sprint(v)
	}
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// formatDuration writes d as Postfix would: whole hours as "24h", whole
// seconds as "300s", anything finer as Go does ("1.5s").
func formatDuration(d time.Duration) string {
	switch {
	case d != 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return d.String()
	}
}

// RestartOnly names the settings that differ between a and b and take
// effect only at a restart (the table's restart column): the sockets, the
// processes' users and their logging, and what the root parent and the
// delivery workers were started with.
func RestartOnly(a, b *Config) []string {
	var out []string
	for _, sec := range sections {
		for _, s := range sec.settings {
			if va, _ := a.Value(s.name); s.restart && va != must(b.Value(s.name)) {
				out = append(out, s.name)
			}
		}
	}
	return out
}

func must(v string, _ bool) string { return v }

// NonDefault names the settings that the configuration text data (read
// from path) sets to something else than what they would be without it,
// in the table's order: what `vlmtpd config -n` prints. A setting whose
// default is worked out from others counts as default when it equals what
// that gives; a required one always differs.
func NonDefault(path string, data []byte) ([]string, error) {
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	var set map[string]any
	if _, err := toml.Decode(string(data), &set); err != nil {
		return nil, err
	}
	var out []string
	for _, name := range Names() {
		v, ok := set[name]
		if !ok {
			continue
		}
		delete(set, name)
		var without strings.Builder
		if err := toml.NewEncoder(&without).Encode(set); err != nil {
			return nil, err
		}
		set[name] = v
		d, err := Parse(path, []byte(without.String()))
		if err != nil || must(d.Value(name)) != must(c.Value(name)) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Runs in: the front (and the lookup, check-config and makemap commands).

// Package pfconf reads the configuration files of Postfix's SQL and LDAP
// tables (mysql_table(5), pgsql_table(5), sqlite_table(5), ldap_table(5))
// unchanged, and implements what those tables share: the %-expansion of
// lookup keys and results, the "domain" restriction and the result
// collection with "expansion_limit".
package pfconf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vlmtpd/vlmtpd/maps"
)

// Config is one parsed table configuration file.
type Config struct {
	Path   string
	values map[string]string
	lines  map[string]int
	used   map[string]bool
}

// OpenFile reads the configuration file a table spec names. A relative name
// is taken from dir (vlmtpd has no main.cf, so Postfix's legacy
// "mysql:prefix" form that reads prefix_* parameters from main.cf does not
// exist here: every name is a file).
func OpenFile(name, dir string) (*Config, error) {
	if name == "" {
		return nil, fmt.Errorf("missing configuration file name")
	}
	if !filepath.IsAbs(name) && dir != "" {
		name = filepath.Join(dir, name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := parse(f, name)
	if err != nil {
		return nil, err
	}
	c.Path = name
	return c, nil
}

// Parse reads main.cf syntax: "name = value" logical lines as
// maps.ScanLines reads them (a line that starts with white space
// continues the previous one, lines whose first non-blank character is
// "#" are comments), except that a continuation with nothing before it is
// an error. Unlike main.cf, "$name" is not expanded (Postfix's cfg_parser
// does not either). A later setting of the same name wins, as in main.cf.
func Parse(r io.Reader) (*Config, error) { return parse(r, "config") }

// parse is Parse with errors naming name:line.
func parse(r io.Reader, name string) (*Config, error) {
	c := &Config{values: map[string]string{}, lines: map[string]int{}, used: map[string]bool{}}
	// ScanLines warns about a leading continuation line and skips it; in
	// a table's configuration that loses part of a setting, so it is an
	// error. It can only come before the first parameter.
	var orphan string
	warn := maps.Warn(func(msg string) {
		if orphan == "" {
			orphan = strings.TrimSuffix(msg, ": ignoring this line")
		}
	})
	err := maps.ScanLines(r, name, warn, func(line int, text string) error {
		if orphan != "" {
			return errors.New(orphan)
		}
		key, value, ok := strings.Cut(text, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return fmt.Errorf("%s:%d: expected \"name = value\"", name, line)
		}
		c.values[key] = strings.TrimSpace(value)
		c.lines[key] = line
		return nil
	})
	if err == nil && orphan != "" {
		err = errors.New(orphan)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) where(name string) string {
	if l, ok := c.lines[name]; ok {
		return fmt.Sprintf("%s:%d: %s", c.Path, l, name)
	}
	return fmt.Sprintf("%s: %s", c.Path, name)
}

// Has reports whether name is set, and marks it as known.
func (c *Config) Has(name string) bool {
	c.used[name] = true
	_, ok := c.values[name]
	return ok
}

// Str returns the value of name, or def when it is not set.
func (c *Config) Str(name, def string) string {
	c.used[name] = true
	if v, ok := c.values[name]; ok {
		return v
	}
	return def
}

// Int returns an integer parameter, at least min.
func (c *Config) Int(name string, def, min int) (int, error) {
	v := c.Str(name, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		return 0, fmt.Errorf("%s: want an integer >= %d, got %q", c.where(name), min, v)
	}
	return n, nil
}

// Bool returns a yes/no parameter (Postfix also accepts true/false).
func (c *Config) Bool(name string, def bool) (bool, error) {
	switch strings.ToLower(c.Str(name, "")) {
	case "":
		return def, nil
	case "yes", "true", "on", "1":
		return true, nil
	case "no", "false", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%s: want yes or no, got %q", c.where(name), c.values[name])
}

// Duration returns a Postfix time value: a number with an optional unit
// s, m, h, d or w; a bare number is in defUnit.
func (c *Config) Duration(name string, def, defUnit time.Duration) (time.Duration, error) {
	v := strings.ToLower(c.Str(name, ""))
	if v == "" {
		return def, nil
	}
	unit := defUnit
	num := v
	if last := v[len(v)-1]; last < '0' || last > '9' {
		num = v[:len(v)-1]
		switch last {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			num = ""
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: want a time like 5s or 1m, got %q", c.where(name), c.values[name])
	}
	return time.Duration(n) * unit, nil
}

// Ignore marks parameters that are accepted but have no effect in vlmtpd,
// logging each that is set.
func (c *Config) Ignore(log *slog.Logger, level slog.Level, why string, names ...string) {
	for _, n := range names {
		if c.Has(n) {
			log.Log(context.Background(), level, "table parameter ignored: "+why, "file", c.Path, "parameter", n)
		}
	}
}

// IgnorePrefix is Ignore for every set parameter that starts with prefix.
func (c *Config) IgnorePrefix(log *slog.Logger, level slog.Level, why, prefix string) {
	for _, n := range c.Names() {
		if strings.HasPrefix(n, prefix) {
			c.Ignore(log, level, why, n)
		}
	}
}

// Names lists the parameters set in the file, sorted.
func (c *Config) Names() []string {
	out := make([]string, 0, len(c.values))
	for n := range c.values {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// WarnUnknown logs every parameter the table never asked for: Postfix
// silently ignores them, but a misspelt name is the likeliest mistake.
func (c *Config) WarnUnknown(log *slog.Logger) {
	for _, n := range c.Names() {
		if !c.used[n] {
			log.Warn("unknown table parameter ignored", "file", c.Path, "line", c.lines[n], "parameter", n)
		}
	}
}

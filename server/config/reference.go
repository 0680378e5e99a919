// Runs in: the commands that print documentation (man, config).
//
// The settings' documentation, for vlmtpd.toml(5)
// and the README.

package config

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"
)

// Doc describes one setting for the documentation. Text fields are
// Markdown.
type Doc struct {
	Section string
	Name    string
	Type    string // string, list, number, boolean, time, or mode
	Default string // "`value`", "none", or how it is worked out
	Text    string // what it does; says when a change needs a restart
}

// Reference is every setting's documentation, in the table's order.
func Reference() []Doc {
	var out []Doc
	for _, sec := range sections {
		for _, s := range sec.settings {
			d := Doc{Section: sec.title, Name: s.name, Type: typeName(s.name), Default: s.defDoc, Text: s.doc + "."}
			switch s.def {
			case "":
			case `""`, "[]":
				d.Default = "none"
			default:
				d.Default = "`" + s.def + "`"
			}
			if s.more != "" {
				d.Text += " " + s.more
			}
			if s.restart {
				d.Text += " Restart to change (a reload keeps the old value)."
			}
			out = append(out, d)
		}
	}
	return out
}

// typeName names a setting's kind of value from its Config field.
func typeName(name string) string {
	f, _ := reflect.TypeFor[Config]().FieldByName(fieldOf[name])
	switch f.Type {
	case reflect.TypeFor[time.Duration]():
		return "time"
	case reflect.TypeFor[os.FileMode]():
		return "mode"
	case reflect.TypeFor[[]string](), reflect.TypeFor[[]netip.Prefix]():
		return "list"
	}
	switch f.Type.Kind() {
	case reflect.Int, reflect.Int64:
		return "number"
	case reflect.Bool:
		return "boolean"
	}
	return "string"
}

// markdownTable is the README's table of settings: one row per setting,
// a bold row per section.
func markdownTable() string {
	var b strings.Builder
	b.WriteString("| setting | default | meaning |\n|---|---|---|\n")
	section := ""
	for _, d := range Reference() {
		if d.Section != section {
			section = d.Section
			b.WriteString("| **" + section + "** | | |\n")
		}
		b.WriteString("| `" + d.Name + "` | " + cell(d.Default) + " | " + cell(d.Text) + " |\n")
	}
	return b.String()
}

// cell escapes what would end a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

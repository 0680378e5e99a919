package maps

import (
	"context"
	"testing"
	"time"
)

// Every lookup of a table opened with Observe is reported once, with its
// outcome; Close still reaches the table.
func TestObserveReportsEachLookup(t *testing.T) {
	type seen struct{ table, result string }
	var got []seen
	m, err := Open("inline:{ alice@example.com=yes }", Options{Observe: func(table, result string, d time.Duration) {
		if d < 0 {
			t.Errorf("negative duration %v", d)
		}
		got = append(got, seen{table, result})
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(m)
	ctx := context.Background()
	if _, found, _ := m.Lookup(ctx, "alice@example.com"); !found {
		t.Fatal("alice not found")
	}
	m.Lookup(ctx, "bob@example.com")
	want := []seen{{"inline:{ alice@example.com=yes }", "found"}, {"inline:{ alice@example.com=yes }", "notfound"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("observed %v, want %v", got, want)
	}
}

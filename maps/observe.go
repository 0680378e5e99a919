// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"context"
	"time"
)

// observed is a table whose lookups are reported to Options.Observe.
type observed struct {
	Map
	observe func(table, result string, d time.Duration)
}

func (o *observed) Lookup(ctx context.Context, key string) (string, bool, error) {
	start := time.Now()
	v, found, err := o.Map.Lookup(ctx, key)
	result := "notfound"
	switch {
	case err != nil:
		result = "error"
	case found:
		result = "found"
	}
	o.observe(o.Map.Spec(), result, time.Since(start))
	return v, found, err
}

// Close closes the table underneath.
func (o *observed) Close() error { return Close(o.Map) }

package store

import "testing"

func TestIDPolicy(t *testing.T) {
	p := IDPolicy{MinUID: 100}
	for _, tc := range []struct {
		uid, gid int
		ok       bool
	}{
		{5000, 5000, true}, {100, 1, true}, {MaxID, MaxID, true},
		{0, 5000, false}, {5000, 0, false}, {-1, 5000, false}, {99, 5000, false},
		{MaxID + 1, 5000, false}, {5000, MaxID + 1, false},
	} {
		if err := p.Check(tc.uid, tc.gid); (err == nil) != tc.ok {
			t.Errorf("Check(%d, %d) = %v, want ok %v", tc.uid, tc.gid, err, tc.ok)
		}
	}
	if err := (IDPolicy{}).Check(1, 1); err != nil {
		t.Errorf("no minimum: %v", err)
	}
}

// Runs in: a worker (its credentials), the tests and the benchmark.

package proctree

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Creds is a process's identity as the kernel reports it in
// /proc/PID/status (the thread group leader's view).
type Creds struct {
	UIDs, GIDs [4]int // real, effective, saved, filesystem
	Groups     []int
	// Capability sets as bit masks.
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64
	NoNewPrivs                             bool
}

// ReadCreds parses /proc/PID/status; pid 0 means the calling process.
func ReadCreds(pid int) (*Creds, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := &Creds{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var perr error
		switch key {
		case "Uid":
			perr = parseIDs(val, &c.UIDs)
		case "Gid":
			perr = parseIDs(val, &c.GIDs)
		case "Groups":
			for _, g := range strings.Fields(val) {
				n, err := strconv.Atoi(g)
				if err != nil {
					perr = err
				}
				c.Groups = append(c.Groups, n)
			}
		case "CapInh":
			c.CapInh, perr = strconv.ParseUint(val, 16, 64)
		case "CapPrm":
			c.CapPrm, perr = strconv.ParseUint(val, 16, 64)
		case "CapEff":
			c.CapEff, perr = strconv.ParseUint(val, 16, 64)
		case "CapBnd":
			c.CapBnd, perr = strconv.ParseUint(val, 16, 64)
		case "CapAmb":
			c.CapAmb, perr = strconv.ParseUint(val, 16, 64)
		case "NoNewPrivs":
			c.NoNewPrivs = val == "1"
		default:
			continue
		}
		if perr != nil {
			return nil, fmt.Errorf("%s: bad %s line: %v", path, key, perr)
		}
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, k := range []string{"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapAmb", "NoNewPrivs"} {
		if !seen[k] {
			return nil, fmt.Errorf("%s: no %s line", path, k)
		}
	}
	return c, nil
}

func parseIDs(val string, ids *[4]int) error {
	f := strings.Fields(val)
	if len(f) != 4 {
		return errors.New("want 4 ids")
	}
	for i, s := range f {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		ids[i] = n
	}
	return nil
}

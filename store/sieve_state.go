// Runs in: a worker, as the mailbox owner.

package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/fdio"
)

// stateSeq tells apart the temporary names of one worker's state writes.
var stateSeq atomic.Uint64

// sieveState keeps what Sieve remembers between messages for one mailbox:
// the vacation replies sent (RFC 5230 4.2, per sender and :handle) and the
// duplicate ids seen (RFC 7352). It lives beneath the mailbox, written as
// its owner: in a Maildir the directory vlmtpd-sieve/ (no leading dot, so
// no Maildir++ reader takes it for a folder), beside an mbox the directory
// .<name>.vlmtpd-sieve/. Each entry is one small file named by a hash of
// its key, holding its expiry time; an expired entry counts as absent and
// is removed when another one is recorded.
type sieveState struct {
	l     *Writer
	rel   string
	comps []string
	now   func() time.Time
}

const (
	vacationPrefix  = "vacation-"
	duplicatePrefix = "duplicate-"
	// stateDirName is the Maildir's state directory.
	stateDirName = "vlmtpd-sieve"
	// maxStateScan bounds the entries one cleanup looks at.
	maxStateScan = 512
)

func (l *Writer) sieveState(mp mailboxPath, r Recipient) *sieveState {
	s := &sieveState{l: l, now: time.Now}
	if r.Format() == Maildir {
		s.comps = append(append([]string(nil), mp.comps...), stateDirName)
	} else {
		s.comps = append(append([]string(nil), mp.comps[:len(mp.comps)-1]...), "."+mp.name+"."+stateDirName)
	}
	s.rel = strings.Join(s.comps, "/")
	return s
}

func stateFile(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(sum[:20])
}

// Responded implements sieve.VacationTracker.
func (s *sieveState) Responded(_ context.Context, key string) (bool, error) {
	return s.valid(stateFile(vacationPrefix, key))
}

// Seen implements sieve.DuplicateTracker.
func (s *sieveState) Seen(_ context.Context, key string) (bool, error) {
	return s.valid(stateFile(duplicatePrefix, key))
}

// valid reports whether the entry exists and has not expired.
func (s *sieveState) valid(name string) (bool, error) {
	exp, err := s.expiry(name)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return s.now().Unix() < exp, nil
}

func (s *sieveState) expiry(name string) (int64, error) {
	fd, err := openBeneath(s.l.base, s.rel+"/"+name, readNonblock, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	b, err := readAllFD(fd, 64)
	if err != nil {
		return 0, err
	}
	exp, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if perr != nil {
		return 0, nil // unreadable: expired
	}
	return exp, nil
}

// record writes the entry for period. restart (duplicate :last, and every
// vacation reply) moves an unexpired entry's expiry; otherwise an
// unexpired entry is left as it is.
func (s *sieveState) record(prefix, key string, period time.Duration, restart bool) error {
	name := stateFile(prefix, key)
	now := s.now()
	if !restart {
		if ok, err := s.valid(name); err == nil && ok {
			return nil
		}
	}
	dir, err := mkdirAllBeneath(s.l.base, s.rel, s.comps)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	var st unix.Stat_t
	if err := unix.Fstat(dir, &st); err != nil {
		return err
	}
	if err := checkOwnedDir(&st, s.l.uid, stateDirName); err != nil {
		return err
	}
	// pid and a counter: deliveries of one worker run concurrently (a
	// request may carry several messages for one user), and O_EXCL would
	// refuse the second of two names made in the same nanosecond.
	tmp := fmt.Sprintf(".tmp.%d.%d.%d", os.Getpid(), now.UnixNano(), stateSeq.Add(1))
	fd, err := openBeneath(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = fdio.WriteAll(fd, []byte(strconv.FormatInt(now.Add(period).Unix(), 10)+"\n"))
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dir, tmp, dir, name)
	}
	if err != nil {
		unix.Unlinkat(dir, tmp, 0)
		return err
	}
	s.cleanup(dir, now)
	return nil
}

// cleanup removes expired entries (a bounded number per call).
func (s *sieveState) cleanup(dir int, now time.Time) {
	fd, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), stateDirName)
	defer f.Close()
	names, _ := f.Readdirnames(maxStateScan)
	for _, n := range names {
		if !strings.HasPrefix(n, vacationPrefix) && !strings.HasPrefix(n, duplicatePrefix) {
			continue
		}
		if exp, err := s.expiry(n); err == nil && exp <= now.Unix() {
			unix.Unlinkat(dir, n, 0)
		}
	}
}

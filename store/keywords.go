// Runs in: a worker, as the mailbox owner.

package store

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/fdio"
)

// IMAP keywords (imap4flags flags without a backslash: "$Label1", "Junk")
// are stored the way Dovecot stores them in a Maildir: each folder's
// dovecot-keywords file lists "N name" lines, and a message carries the
// letter 'a'+N in its info part after the system flags. Dovecot allows 26
// keywords per folder this way; so do we. The file is replaced, never
// rewritten in place, through dovecot-keywords.lock created exclusively
// (the dotlock Dovecot takes for it), so Dovecot and vlmtpd never write it
// at once. Written by hand: no library knows this file.

const (
	keywordsFile     = "dovecot-keywords"
	keywordsLock     = keywordsFile + ".lock"
	maxKeywords      = 26
	keywordsStale    = 30 * time.Second // Dovecot's stale timeout for this dotlock
	keywordsAttempts = 20
	keywordsMaxBytes = 64 << 10
)

var errKeywordsBusy = errors.New("dovecot-keywords is being written by another process")

// validKeyword is an IMAP atom (RFC 3501): printable ASCII without
// specials; Dovecot refuses anything else as a keyword.
func validKeyword(k string) bool {
	if k == "" || len(k) > 128 || k[0] == '\\' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// Keywords returns the keywords among IMAP flags, in order, once each.
func Keywords(flags []string) []string {
	var out []string
	for _, f := range flags {
		if validKeyword(f) && !containsFold(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func containsFold(xs []string, s string) bool {
	for _, x := range xs {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// parseKeywords reads dovecot-keywords: index → name. Lines it cannot
// read are skipped, as Dovecot does.
func parseKeywords(data []byte) map[int]string {
	out := map[int]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		n, name, ok := strings.Cut(line, " ")
		idx, err := strconv.Atoi(n)
		if !ok || err != nil || idx < 0 || idx >= maxKeywords || name == "" {
			continue
		}
		out[idx] = name
	}
	return out
}

// keywordLetters returns the info letters for keywords in the folder dir
// (an open directory), adding the missing ones to its dovecot-keywords.
// Keywords beyond the 26 a folder can hold are dropped (dropped reports
// them).
func keywordLetters(dir int, keywords []string, uid int) (letters string, dropped []string, err error) {
	for attempt := 0; ; attempt++ {
		letters, dropped, err = tryKeywordLetters(dir, keywords, uid)
		if !errors.Is(err, errKeywordsBusy) || attempt >= keywordsAttempts {
			return letters, dropped, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tryKeywordLetters(dir int, keywords []string, uid int) (string, []string, error) {
	var data []byte
	fd, err := openBeneath(dir, keywordsFile, readNonblock, 0)
	switch {
	case err == nil:
		var st unix.Stat_t
		if err = unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			err = fmt.Errorf("%s is not a regular file", keywordsFile)
		}
		if err == nil {
			data, err = readAllFD(fd, keywordsMaxBytes)
		}
		unix.Close(fd)
		if err != nil {
			return "", nil, err
		}
	case err != unix.ENOENT:
		return "", nil, err
	}
	table := parseKeywords(data)
	index := func(k string) int {
		for i := 0; i < maxKeywords; i++ {
			if name, ok := table[i]; ok && strings.EqualFold(name, k) {
				return i
			}
		}
		return -1
	}
	var letters []byte
	var dropped []string
	changed := false
	for _, k := range keywords {
		i := index(k)
		if i < 0 {
			for j := 0; j < maxKeywords; j++ {
				if _, used := table[j]; !used {
					i, table[j], changed = j, k, true
					break
				}
			}
		}
		if i < 0 {
			dropped = append(dropped, k)
			continue
		}
		letters = append(letters, byte('a'+i))
	}
	if changed {
		if err := writeKeywords(dir, table, uid); err != nil {
			return "", nil, err
		}
	}
	slices.Sort(letters)
	return string(letters), dropped, nil
}

// writeKeywords replaces dovecot-keywords through its lock file.
func writeKeywords(dir int, table map[int]string, uid int) error {
	fd, err := openBeneath(dir, keywordsLock, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if unix.Fstatat(dir, keywordsLock, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			time.Since(time.Unix(st.Mtim.Unix())) > keywordsStale && int(st.Uid) == uid {
			unix.Unlinkat(dir, keywordsLock, 0)
		}
		return errKeywordsBusy
	}
	if err != nil {
		return err
	}
	var b strings.Builder
	for i := 0; i < maxKeywords; i++ {
		if name, ok := table[i]; ok {
			fmt.Fprintf(&b, "%d %s\n", i, name)
		}
	}
	err = fdio.WriteAll(fd, []byte(b.String()))
	if err == nil {
		err = unix.Fdatasync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dir, keywordsLock, dir, keywordsFile)
	}
	if err != nil {
		unix.Unlinkat(dir, keywordsLock, 0)
	}
	return err
}

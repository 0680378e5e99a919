package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Keywords get the letters of dovecot-keywords, new ones the first free
// index; the file keeps what Dovecot wrote; the 27th keyword is dropped.
func TestKeywordLetters(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, keywordsFile), []byte("0 $Label1\n2 Junk\nbroken line\n"), 0o600)
	fd := openTestDir(t, dir)
	letters, dropped, err := keywordLetters(fd, []string{"junk", "NonJunk", "$Label1"}, os.Getuid())
	if err != nil || letters != "abc" || len(dropped) != 0 {
		t.Fatalf("got %q %v %v, want abc", letters, dropped, err)
	}
	if got := readFile(t, filepath.Join(dir, keywordsFile)); got != "0 $Label1\n1 NonJunk\n2 Junk\n" {
		t.Errorf("dovecot-keywords:\n%s", got)
	}
	var many []string
	for i := 0; i < 30; i++ {
		many = append(many, "k"+itoa(int64(i)))
	}
	letters, dropped, err = keywordLetters(fd, many, os.Getuid())
	if err != nil || len(letters) != 23 || len(dropped) != 7 {
		t.Errorf("30 more keywords: %d letters, %d dropped, %v", len(letters), len(dropped), err)
	}
	if _, err := os.Stat(filepath.Join(dir, keywordsLock)); !os.IsNotExist(err) {
		t.Errorf("lock left behind: %v", err)
	}
}

// A lock held by someone else (Dovecot rewriting the file) is waited for,
// then the keywords are given up: the message is still delivered.
func TestKeywordsLockedDeliveryGoesOn(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{}, `require "imap4flags"; addflag ["\\Seen", "Work"];`)
	md := filepath.Join(base, "example.com/u")
	os.MkdirAll(md, 0o700)
	os.WriteFile(filepath.Join(md, keywordsLock), nil, 0o600)
	if err := deliver(t, l, spool(t, "s@x", "Subject: k\n\nx\n"), r); err != nil {
		t.Fatal(err)
	}
	cur := listDir(t, filepath.Join(md, "cur"))
	if len(cur) != 1 || !strings.HasSuffix(cur[0], ":2,S") {
		t.Errorf("cur/: %v, want the message with \\Seen only", cur)
	}
}

func TestKeywordsFromFlags(t *testing.T) {
	got := Keywords([]string{`\Seen`, "$Label1", "junk", "Junk", "bad(atom", ""})
	if strings.Join(got, ",") != "$Label1,junk" {
		t.Errorf("Keywords: %q", got)
	}
}

package tests

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// txn sends one pipelined transaction (MAIL, every RCPT and DATA in one
// write, as Postfix does) and returns the RCPT replies and, if DATA was
// accepted, one reply per accepted recipient. body uses LF; it is sent
// with CRLF and dot-stuffed.
func (r *Raw) txn(mailArgs string, rcpts []string, body string) (rcptReplies, dataReplies []string) {
	r.t.Helper()
	var b strings.Builder
	b.WriteString("MAIL FROM:" + mailArgs + "\r\n")
	for _, rc := range rcpts {
		b.WriteString("RCPT TO:" + rc + "\r\n")
	}
	b.WriteString("DATA\r\n")
	r.Send(b.String())
	if mail := r.Reply(); !strings.HasPrefix(mail, "250") {
		r.t.Fatalf("MAIL refused: %s", mail)
	}
	accepted := 0
	for range rcpts {
		rep := r.Reply()
		rcptReplies = append(rcptReplies, rep)
		if strings.HasPrefix(rep, "250") {
			accepted++
		}
	}
	data := r.Reply()
	if !strings.HasPrefix(data, "354") {
		return rcptReplies, []string{data}
	}
	r.Send(wire(body) + ".\r\n")
	for i := 0; i < accepted; i++ {
		dataReplies = append(dataReplies, r.Reply())
	}
	return rcptReplies, dataReplies
}

// lhlo opens a session.
func (r *Raw) lhlo() {
	r.t.Helper()
	r.Send("LHLO client.test\r\n")
	r.Expect("250")
}

// wire turns an LF message into dot-stuffed CRLF lines.
func wire(body string) string {
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	lines := strings.SplitAfter(body, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		l = strings.TrimSuffix(l, "\n")
		if strings.HasPrefix(l, ".") {
			b.WriteString(".")
		}
		b.WriteString(l + "\r\n")
	}
	return b.String()
}

// maildirFiles lists the messages in a Maildir's new/ directory, sorted,
// and fails the test if tmp/ holds anything.
func maildirFiles(t testing.TB, dir string) []string {
	t.Helper()
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) > 0 {
		t.Errorf("%s/tmp is not empty: %d files", dir, len(tmp))
	}
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(dir, "new", e.Name()))
	}
	sort.Strings(out)
	return out
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkOwnerMode fails unless path has the given owner and permission bits.
func checkOwnerMode(t testing.TB, path string, uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", path, st.Uid, st.Gid, uid, gid)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %o, want %o", path, fi.Mode().Perm(), mode)
	}
}

// mboxMessages splits an mbox into its messages (each starting with its
// From_ line), checking that every message ends with an empty line.
func mboxMessages(t testing.TB, content string) []string {
	t.Helper()
	if content == "" {
		return nil
	}
	if !strings.HasPrefix(content, "From ") {
		t.Fatalf("mbox does not start with a From_ line: %.80q", content)
	}
	var msgs []string
	start := 0
	for i := 0; i < len(content); {
		j := strings.Index(content[i:], "\n\nFrom ")
		if j < 0 {
			break
		}
		end := i + j + 2
		msgs = append(msgs, content[start:end])
		start, i = end, end
	}
	msgs = append(msgs, content[start:])
	for _, m := range msgs {
		if !strings.HasSuffix(m, "\n\n") {
			t.Errorf("mbox message does not end with an empty line: %.200q", m)
		}
	}
	return msgs
}

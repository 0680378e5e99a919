package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiskFull: ENOSPC while writing is 452 4.3.0 (the MTA retries), the
// other recipients are delivered, and nothing partial is left behind.
func TestDiskFull(t *testing.T) {
	rootOrSkip(t, "mounting a small tmpfs")
	in := StartInstance(t, Options{
		Tables: map[string]string{"vmailbox": defaultMailboxes + "fullmd@example.com full/md/\nfullmbox@example.com full/mbox\n"},
		Prepare: func(dir string) {
			full := filepath.Join(dir, "mail", "full")
			os.MkdirAll(full, 0o755)
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", full).CombinedOutput(); err != nil {
				skipOrFail(t, "cannot mount tmpfs here: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", "-l", full).Run() })
			chownTree(t, full, testMailOwner(t))
		},
	})
	c := in.Dial(t)
	c.lhlo()
	body := "Subject: big\n\n" + strings.Repeat(strings.Repeat("b", 99)+"\n", 1500) // 150 KB
	_, dr := c.txn("<s@remote.test>", []string{"<fullmd@example.com>", "<fullmbox@example.com>", "<alice@example.com>"}, body)
	want := []string{"452 4.3.0 <fullmd@example.com>", "452 4.3.0 <fullmbox@example.com>", "250 2.0.0 <alice@example.com>"}
	for i, w := range want {
		if i >= len(dr) || !strings.HasPrefix(dr[i], w) {
			t.Fatalf("replies %v, want %v", dr, want)
		}
	}
	md := filepath.Join(in.Base, "full/md")
	if n := len(maildirFiles(t, md)); n != 0 {
		t.Errorf("%d files in new/ after ENOSPC", n)
	}
	if fi, err := os.Stat(filepath.Join(in.Base, "full/mbox")); err == nil && fi.Size() != 0 {
		t.Errorf("mbox holds %d bytes after ENOSPC, want it truncated back to 0", fi.Size())
	}
}

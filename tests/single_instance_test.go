package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// single_instance_delivery over LMTP: three Maildir recipients of one
// message get one file (one inode, three links, owner and mode as any
// message, only Return-Path added); the mbox recipient its own copy with
// its trace headers; every recipient its 250. The setting reaches the
// delivery worker through its command line.
func TestSingleInstanceDeliveryOverLMTP(t *testing.T) {
	t.Run("single-user", func(t *testing.T) {
		singleInstanceOverLMTP(t, StartInstance(t, Options{Config: "single_instance_delivery = true\n"}))
	})
	// Privilege-separated: the root parent starts the worker (as the
	// mailbox owner) from its own reading of the setting.
	t.Run("privsep", func(t *testing.T) {
		rootOrSkip(t, "privilege separation")
		singleInstanceOverLMTP(t, StartInstance(t, Options{
			Privileged: true,
			Config:     "user = \"nobody\"\nsingle_instance_delivery = true\n",
			Prepare: func(dir string) {
				os.Chown(filepath.Join(dir, "spool"), 65534, 65534) // the front writes the spool
			},
		}))
	})
}

func singleInstanceOverLMTP(t *testing.T, in *Instance) {
	c := in.Dial(t)
	c.lhlo()
	rcpts := []string{"alice@example.com", "carol@example.com", "bob@example.com", "someone@example.org"}
	var wire []string
	for _, r := range rcpts {
		wire = append(wire, "<"+r+">")
	}
	rr, dr := c.txn("<sender@remote.test>", wire, sampleBody)
	checkDelivered(t, rr, dr, rcpts...)
	c.Close()

	want := "Return-Path: <sender@remote.test>\n" + sampleBody
	var ino uint64
	for _, md := range []string{"example.com/alice", "example.com/carol", "example.org/catchall"} {
		files := maildirFiles(t, filepath.Join(in.Base, md))
		if len(files) != 1 {
			t.Fatalf("%s: %d messages, want 1", md, len(files))
		}
		if got := readFile(t, files[0]); got != want {
			t.Errorf("%s: content\n%q\nwant\n%q", md, got, want)
		}
		checkOwnerMode(t, files[0], in.UID, in.GID, 0o600)
		fi, err := os.Lstat(files[0])
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Nlink != 3 {
			t.Errorf("%s: %d links, want 3", md, st.Nlink)
		}
		if ino == 0 {
			ino = st.Ino
		} else if st.Ino != ino {
			t.Errorf("%s: inode %d, not the shared %d", md, st.Ino, ino)
		}
	}
	mbox := readFile(t, filepath.Join(in.Base, "example.com/bob"))
	if !strings.Contains(mbox, "\nDelivered-To: bob@example.com\n") {
		t.Errorf("the mbox recipient lost its Delivered-To:\n%s", mbox)
	}
}

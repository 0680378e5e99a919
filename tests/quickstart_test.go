package tests

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
)

// quickstart as root (the README's `make run`) runs the parent, which
// starts the front as nobody with the try-out owner on its command line
// (-mailbox-owner): mail lands owned by nobody, as the README says.
func TestQuickstartAsRoot(t *testing.T) {
	rootOrSkip(t, "quickstart as root starts a privilege-separated server")
	bin := vlmtpdBinary(t)
	dir := sharedTempDir(t)
	example, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's own TCP port may be taken on this machine: the socket only.
	writeTestFile(t, filepath.Join(dir, "vlmtpd.toml"), mergeTOML(string(example), `listen = ["unix:run/lmtp.sock"]`))
	for _, f := range []string{"vdomains", "vmailbox"} {
		b, err := os.ReadFile(filepath.Join("../examples", f))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(dir, "examples", f), string(b))
	}
	var logs testutil.SyncBuffer
	cmd := exec.Command(bin, "quickstart", "-config", filepath.Join(dir, "vlmtpd.toml"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("vlmtpd log:\n%s", logs.String())
		}
	}()
	sock := filepath.Join(dir, "run", "lmtp.sock")
	waitAccept(t, "unix", sock, 15*time.Second)

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	r := newRaw(t, c)
	defer r.Close()
	r.Send("LHLO client.test\r\n")
	r.Expect("250")
	r.Send("MAIL FROM:<s@client.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
	r.Expect("250")
	r.Expect("250")
	r.Expect("354")
	r.Send("Subject: first\r\n\r\nhello\r\n.\r\n")
	r.Expect("250 2.0.0")

	nobody := 65534
	newDir := filepath.Join(dir, "run", "mail", "example.com", "alice", "new")
	ents, err := os.ReadDir(newDir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("%s: %v, %d files", newDir, err, len(ents))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(newDir, ents[0].Name()), &st); err != nil || int(st.Uid) != nobody || int(st.Gid) != nobody {
		t.Errorf("message owned by %d:%d (%v), want nobody", st.Uid, st.Gid, err)
	}
	if b, _ := os.ReadFile(filepath.Join(newDir, ents[0].Name())); !strings.Contains(string(b), "Subject: first\n\nhello\n") {
		t.Errorf("message: %q", b)
	}

	// The front: nobody, the hidden front command, the owner passed on.
	var front *proc
	for _, p := range children(t, cmd.Process.Pid) {
		if p.role() == "front" {
			front = &p
		}
	}
	if front == nil {
		t.Fatalf("no front among the parent's children: %v", children(t, cmd.Process.Pid))
	}
	if !strings.Contains(strings.Join(front.argv, " "), "-mailbox-owner 65534:65534") {
		t.Errorf("front's command line %q lacks the try-out owner", front.argv)
	}
	var fst syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(front.pid), &fst); err != nil || int(fst.Uid) != nobody {
		t.Errorf("front runs as uid %d (%v), want nobody", fst.Uid, err)
	}
}

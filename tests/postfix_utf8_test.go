package tests

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Postfix with its defaults (smtputf8_enable = yes) sends a non-ASCII
// recipient with ORCPT=rfc822;jos+C3+A9@idn.test, an empty quoted local
// part to a catch-all, and quoted ORCPTs. Each is delivered, with
// X-Original-To as virtual(8) writes it, never bounced.
func TestPostfixNonASCIIRecipients(t *testing.T) {
	v := startVlmtpdFor(t, vlmtpdSetup{
		Privsep: true,
		Domains: []string{"idn.test", "catch.test", "plus.test"},
		Mailboxes: map[string]string{
			"josé@idn.test":   "idn.test/jose/",
			"@catch.test":     "catch.test/all/",
			"alice@plus.test": "plus.test/alice/",
		},
	})
	pf := startPostfix(t, map[string]string{
		"virtual_mailbox_domains": "idn.test, catch.test, plus.test",
		"virtual_mailbox_maps":    "texthash:" + filepath.Join(v.Dir, "vmailbox"),
		"virtual_transport":       "lmtp:unix:" + v.Socket,
	}, false)
	c, err := smtp.Dial(pf.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	send := func(rcpt string, utf8 bool) {
		t.Helper()
		if err := c.Mail("sender@client.test", &smtp.MailOptions{UTF8: utf8, Body: smtp.Body8BitMIME}); err != nil {
			t.Fatalf("MAIL: %v", err)
		}
		if err := c.Rcpt(rcpt, nil); err != nil {
			t.Fatalf("RCPT %s: %v", rcpt, err)
		}
		wc, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(wc, "From: sender@client.test\r\nSubject: utf8\r\n\r\nhola\r\n")
		if err := wc.Close(); err != nil {
			t.Fatalf("DATA for %s: %v", rcpt, err)
		}
	}
	send("josé@idn.test", true)
	send(`""@catch.test`, false)
	send(`"alice"@plus.test`, false)
	c.Quit()

	pollUntil(t, 60*time.Second, "3 lmtp outcomes in Postfix's log", func() bool {
		ds, _ := pf.deliveries()
		return len(ds) >= 3
	})
	ds, _ := pf.deliveries()
	for _, d := range ds {
		if d.Status != "sent" || d.DSN != "2.0.0" {
			t.Errorf("Postfix logged %s %s for <%s>: %s", d.Status, d.DSN, d.To, d.Reply)
		}
	}
	for box, orig := range map[string]string{"idn.test/jose": "josé@idn.test", "catch.test/all": `""@catch.test`, "plus.test/alice": "alice@plus.test"} {
		files := maildirFiles(t, v.mailbox(box))
		if len(files) != 1 {
			t.Errorf("%s holds %d messages, want 1", box, len(files))
			continue
		}
		if got := readFile(t, files[0]); !strings.Contains(got, "\nX-Original-To: "+orig+"\n") {
			t.Errorf("%s: want X-Original-To: %s in\n%s", box, orig, got[:min(len(got), 300)])
		}
	}
}

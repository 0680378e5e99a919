package sieve

import (
	"context"
	"errors"
	"io/fs"
	"sort"
	"strings"
	"testing"
	"time"
)

const testMsg = "From: Alice <alice@example.com>\r\n" +
	"To: me@example.net, Bob <bob@example.org>\r\n" +
	"Subject: [list] Hello *world*\r\n" +
	"Message-ID: <1@example.com>\r\n" +
	"Date: Tue, 01 Dec 2026 09:59:00 +0100\r\n" +
	"\r\nHello body\r\n"

type golden struct {
	name   string
	script string
	msg    string   // testMsg when empty
	env    *Env     // defaults when nil
	want   []string // Result.Lines(), or the error's text prefixed "error: "
}

type mailboxes map[string]bool

func (m mailboxes) MailboxExists(_ context.Context, n string) (bool, error) { return m[n], nil }

type seenSet map[string]bool

func (s seenSet) Seen(_ context.Context, k string) (bool, error)      { return s[k], nil }
func (s seenSet) Responded(_ context.Context, k string) (bool, error) { return s[k], nil }

func runGolden(t *testing.T, cases []golden) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Compile([]byte(c.script), nil)
			if err != nil {
				got := []string{"compile error: " + err.Error()}
				check(t, c, got)
				return
			}
			msg := c.msg
			if msg == "" {
				msg = testMsg
			}
			m, _ := ParseMessage([]byte(msg))
			env := c.env
			if env == nil {
				env = &Env{Envelope: Envelope{From: "alice@example.com", To: "me@example.net"}}
			}
			env.Message = m
			res, err := s.Run(context.Background(), env)
			got := res.Lines()
			if err != nil {
				got = append([]string{"error: " + err.Error()}, got...)
			}
			check(t, c, got)
		})
	}
}

func check(t *testing.T, c golden, got []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
		t.Errorf("%s\ngot:  %q\nwant: %q", c.script, got, c.want)
	}
}

// RFC 5228 section 2.10 (actions, implicit keep) and 4 (actions).
func TestRFC5228Actions(t *testing.T) {
	runGolden(t, []golden{
		{name: "empty script keeps", script: ``, want: []string{"implicit keep"}},
		{name: "keep", script: `keep;`, want: []string{"keep"}},
		{name: "discard", script: `discard;`, want: []string{"discard"}},
		{name: "discard then keep", script: `discard; keep;`, want: []string{"discard", "keep"}},
		{name: "fileinto cancels implicit keep", script: `require "fileinto"; fileinto "A";`, want: []string{`fileinto "A"`}},
		{name: "fileinto twice is once", script: `require "fileinto"; fileinto "A"; fileinto "A";`, want: []string{`fileinto "A"`}},
		{name: "keep and fileinto INBOX are one", script: `require "fileinto"; keep; fileinto "INBOX";`, want: []string{"keep"}},
		{name: "redirect", script: `redirect "Bob@Example.ORG"; redirect "bob@example.org";`, want: []string{`redirect "Bob@example.org"`}},
		{name: "stop", script: `stop; discard;`, want: []string{"implicit keep"}},
		{name: "if elsif else", script: `require "fileinto";
			if false { fileinto "a"; } elsif true { fileinto "b"; } else { fileinto "c"; }`, want: []string{`fileinto "b"`}},
		{name: "redirect limit", script: `redirect "a@x.org"; redirect "b@x.org"; redirect "c@x.org"; redirect "d@x.org"; redirect "e@x.org";`,
			want: []string{"error: script:1:81: limit exceeded: more than 4 redirects", "implicit keep"}},
		{name: "invalid redirect at runtime", script: `require "variables"; set "a" "not an address"; redirect "${a}";`,
			want: []string{`error: script:1:48: redirect: invalid address "not an address"`, "implicit keep"}},
	})
}

// RFC 5228 section 5 (tests), 2.7 (match types), 2.7.3 (comparators).
func TestRFC5228Tests(t *testing.T) {
	yes := []string{`fileinto "yes"`}
	no := []string{"implicit keep"}
	tc := func(name, test string, want []string) golden {
		return golden{name: name, script: `require ["fileinto", "envelope", "relational", "comparator-i;ascii-numeric", "subaddress"]; if ` + test + ` { fileinto "yes"; }`, want: want}
	}
	runGolden(t, []golden{
		tc("header is casemap", `header :is "subject" "[LIST] hello *WORLD*"`, yes),
		tc("header is octet", `header :comparator "i;octet" :is "subject" "[LIST] hello *WORLD*"`, no),
		tc("header contains", `header :contains "Subject" "hello"`, yes),
		tc("matches escaped star", `header :matches "subject" "*\\*world\\*"`, yes),
		tc("matches question", `header :matches "subject" "[????] *"`, yes),
		tc("matches no", `header :matches "subject" "hello*"`, no),
		tc("address all", `address :is "to" "bob@example.org"`, yes),
		tc("address domain", `address :domain :is "from" "EXAMPLE.com"`, yes),
		tc("address localpart", `address :localpart :is "to" "me"`, yes),
		tc("envelope from", `envelope :is "from" "alice@example.com"`, yes),
		tc("envelope to domain", `envelope :domain :is "to" "example.net"`, yes),
		tc("exists", `exists ["from", "to"]`, yes),
		tc("exists missing", `exists ["from", "x-nope"]`, no),
		tc("size over", `size :over 10`, yes),
		tc("size under", `size :under 10`, no),
		tc("not", `not true`, no),
		tc("allof", `allof (true, exists "from")`, yes),
		tc("anyof", `anyof (false, false)`, no),
		tc("value gt", `header :value "gt" "subject" "["`, yes),
		tc("count", `address :count "eq" :comparator "i;ascii-numeric" "to" "2"`, yes),
		tc("numeric", `header :value "lt" :comparator "i;ascii-numeric" "message-id" "1"`, no),
		tc("user", `envelope :user :is "to" "me"`, yes),
		tc("detail none", `envelope :detail :matches "to" "*"`, no),
	})
}

// RFC 5228 section 8 grammar and 3.2 require: compile errors with line and
// column.
func TestCompileErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`keep`, `script:1:5: expected ';' or '{' after the arguments of keep, found end of script`},
		{"keep;\nfileinto \"x\";", `script:2:1: fileinto needs require "fileinto"`},
		{`require "x-unknown";`, `script:1:9: unknown Sieve capability "x-unknown" in require`},
		{`keep; require "fileinto";`, `script:1:7: require must come before any other command`},
		{`if true { keep; `, `script:1:17: expected '}' to end the block of if (line 1), found end of script`},
		{`if header :is :contains "a" "b" { keep; }`, `script:1:15: header: tag :contains conflicts with :is`},
		{`else { keep; }`, `script:1:1: else must follow if or elsif`},
		{"keep;\n  \"abc", `script:2:3: unterminated string`},
		{`if size 10 { keep; }`, `script:1:4: size needs :over or :under`},
		{`/* open`, `script:1:1: unterminated comment`},
		{`require "relational"; if header :value "xx" "a" "b" { keep; }`, `script:1:40: header: invalid relational match "xx" (want gt, ge, lt, le, eq or ne)`},
		{`require "regex"; if header :regex "a" "(" { keep; }`, "script:1:39: header: invalid regular expression \"(\": error parsing regexp: missing closing ): `(?si)(`"},
		{`require "vacation"; vacation "a" "b";`, `script:1:21: vacation takes 1 positional argument(s), not 2`},
		{"require \"vacation\";\nvacation :days \"x\" \"b\";", `script:2:10: vacation: tag :days needs a number argument`},
		{`99999999999999999999;`, `script:1:1: number is too large`},
	} {
		_, err := Compile([]byte(c.src), nil)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\ngot  %v\nwant %s", c.src, err, c.want)
		}
	}
}

// RFC 5429 reject/ereject and their conflicts; RFC 3894 copy.
func TestRejectAndCopy(t *testing.T) {
	runGolden(t, []golden{
		{name: "reject", script: `require "reject"; reject "no thanks";`, want: []string{`reject "no thanks"`}},
		{name: "ereject", script: `require "ereject"; ereject "no";`, want: []string{`ereject "no"`}},
		{name: "reject after fileinto", script: `require ["reject", "fileinto"]; fileinto "a"; reject "no";`,
			want: []string{"error: script:1:47: reject conflicts with an earlier keep or fileinto", "implicit keep"}},
		{name: "keep after reject", script: `require "reject"; reject "no"; keep;`,
			want: []string{"error: script:1:32: keep conflicts with the earlier reject", "implicit keep"}},
		{name: "two rejects", script: `require "reject"; reject "a"; reject "b";`,
			want: []string{"error: script:1:31: reject: only one reject or ereject is allowed", "implicit keep"}},
		{name: "copy keeps implicit keep", script: `require ["copy", "fileinto"]; fileinto :copy "a"; redirect :copy "x@example.org";`,
			want: []string{`fileinto :copy "a"`, `redirect :copy "x@example.org"`, "implicit keep"}},
	})
}

// RFC 5232 imap4flags, RFC 5229 variables, RFC 5490 mailbox.
func TestFlagsVariablesMailbox(t *testing.T) {
	runGolden(t, []golden{
		{name: "flags", script: `require ["imap4flags", "fileinto"]; addflag "\\Seen"; fileinto "a"; addflag ["x", "\\Seen"]; removeflag "\\seen";`,
			want: []string{`fileinto :flags "\\Seen" "a"`}},
		{name: "implicit keep takes the flags", script: `require "imap4flags"; setflag "\\Flagged junk";`,
			want: []string{`implicit keep :flags "\\Flagged junk"`}},
		{name: "match variables", script: `require ["variables", "fileinto"]; if header :matches "subject" "[*] * *" { fileinto "${1}-${2}-${3}"; }`,
			want: []string{`fileinto "list-Hello-*world*"`}},
		{name: "modifiers", script: `require ["variables", "fileinto"]; set :upperfirst :lower "a" "hELLO"; set :length "n" "${a}"; fileinto "${a}${n}";`,
			want: []string{`fileinto "Hello5"`}},
		{name: "mailboxexists", script: `require ["mailbox", "fileinto"]; if mailboxexists "Work" { fileinto :create "Work"; } if mailboxexists "Nope" { discard; }`,
			env:  &Env{Mailboxes: mailboxes{"Work": true}},
			want: []string{`fileinto :create "Work"`}},
	})
}

// RFC 5230 vacation: when no reply must go out.
func TestVacationRules(t *testing.T) {
	script := `require "vacation"; vacation :days 2 :addresses "alias@example.net" "away";`
	env := func(from, to string) *Env { return &Env{Envelope: Envelope{From: from, To: to}} }
	sent := func(extra string) []string {
		return []string{`vacation to "alice@example.com" from "me@example.net" subject "Auto: [list] Hello *world*" seconds 172800 handle "away<default-subject><default-from><NO-MIME>"` + extra + ` reason "away"`, "implicit keep"}
	}
	listMsg := "List-Id: <l.example.org>\r\n" + testMsg
	bulk := "Precedence: bulk\r\n" + testMsg
	auto := "Auto-Submitted: auto-generated\r\n" + testMsg
	autoNo := "Auto-Submitted: no\r\n" + testMsg
	notMe := strings.Replace(testMsg, "me@example.net", "other@example.net", 1)
	alias := strings.Replace(testMsg, "me@example.net", "alias@example.net", 1)
	runGolden(t, []golden{
		{name: "sent", script: script, env: env("alice@example.com", "me@example.net"), want: sent("")},
		{name: "null sender", script: script, env: env("", "me@example.net"),
			want: []string{`vacation to "" from "me@example.net" subject "Auto: [list] Hello *world*" seconds 172800 handle "away<default-subject><default-from><NO-MIME>" (not sent: null sender) reason "away"`, "implicit keep"}},
		{name: "list", script: script, msg: listMsg, env: env("alice@example.com", "me@example.net"), want: sent(" (not sent: a mailing list message (List-Id))")},
		{name: "bulk", script: script, msg: bulk, env: env("alice@example.com", "me@example.net"), want: sent(" (not sent: a bulk message (Precedence: bulk))")},
		{name: "auto-submitted", script: script, msg: auto, env: env("alice@example.com", "me@example.net"), want: sent(" (not sent: an auto-submitted message)")},
		{name: "auto-submitted no", script: script, msg: autoNo, env: env("alice@example.com", "me@example.net"), want: sent("")},
		{name: "not to me", script: script, msg: notMe, env: env("alice@example.com", "me@example.net"), want: sent(" (not sent: none of the user's addresses is in To or Cc)")},
		{name: "to an alias in :addresses", script: script, msg: alias, env: env("alice@example.com", "me@example.net"), want: sent("")},
		{name: "mailer-daemon", script: script, env: env("MAILER-DAEMON@example.com", "me@example.net"),
			want: []string{`vacation to "MAILER-DAEMON@example.com" from "me@example.net" subject "Auto: [list] Hello *world*" seconds 172800 handle "away<default-subject><default-from><NO-MIME>" (not sent: the sender is a list or a mailer daemon) reason "away"`, "implicit keep"}},
		{name: "already answered", script: script, env: &Env{Envelope: Envelope{From: "alice@example.com", To: "me@example.net"},
			Vacations: seenSet{duplicateKey("vacation:away<default-subject><default-from><NO-MIME>", "alice@example.com"): true}},
			want: sent(" (not sent: already answered within the period)")},
	})
}

func TestVacationCompose(t *testing.T) {
	s, err := Compile([]byte(`require "vacation"; vacation :from "Me <me@example.net>" :subject "Gone" "Back on Monday.";`), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ParseMessage([]byte(testMsg))
	res, err := s.Run(context.Background(), &Env{Envelope: Envelope{From: "alice@example.com", To: "me@example.net"}, Message: m})
	if err != nil {
		t.Fatal(err)
	}
	v := res.Actions[0].(*Vacation)
	var b strings.Builder
	if err := v.WriteTo(&b, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "<r1@example.net>"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Auto-Submitted: auto-replied (vacation)\r\n", "In-Reply-To: <1@example.com>\r\n",
		"Subject: Gone\r\n", "To: <alice@example.com>\r\n", "From: \"Me\" <me@example.net>\r\n", "\r\n\r\nBack on Monday."} {
		if !strings.Contains(out, want) {
			t.Errorf("reply lacks %q:\n%s", want, out)
		}
	}
}

// RFC 7352 duplicate and RFC 5293 editheader.
func TestDuplicateAndEditheader(t *testing.T) {
	key := duplicateKey("", "<1@example.com>")
	runGolden(t, []golden{
		{name: "not seen", script: `require "duplicate"; if duplicate { discard; }`, want: []string{"implicit keep"}},
		{name: "seen", script: `require "duplicate"; if duplicate { discard; }`,
			env: &Env{Duplicates: seenSet{key: true}}, want: []string{"discard"}},
	})
	s, _ := Compile([]byte(`require "editheader"; addheader "X-A" "1"; deleteheader :matches "subject" "*world*"; deleteheader "received"; addheader :last "X-B" "Grüße";`), nil)
	m, _ := ParseMessage([]byte("Received: x\r\n" + testMsg))
	res, err := s.Run(context.Background(), &Env{Message: m})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range res.Header {
		names = append(names, f.Name+"="+f.Value)
	}
	want := "X-A=1|Received=x|From=Alice <alice@example.com>|To=me@example.net, Bob <bob@example.org>|Message-Id=<1@example.com>|Date=Tue, 01 Dec 2026 09:59:00 +0100|X-B==?utf-8?q?Gr=C3=BC=C3=9Fe?="
	if got := strings.Join(names, "|"); !res.HeaderEdited || got != want {
		t.Errorf("edited header:\n%s\nwant\n%s", got, want)
	}
	var out strings.Builder
	if err := WriteFields(&out, res.Header); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "X-A: 1\r\nReceived: x\r\nFrom: Alice <alice@example.com>\r\n") ||
		!strings.HasSuffix(out.String(), "X-B: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n") {
		t.Errorf("written header:\n%s", out.String())
	}
	if len(res.Duplicates) != 0 {
		t.Errorf("no duplicate test, yet %v", res.Duplicates)
	}
}

// A script that runs too long is cut off by its context: the message is
// kept (RFC 5228 2.10.6) and the error says it was the CPU limit.
func TestCPULimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(`require "variables"; set "a" "x";`)
	for i := 0; i < 2000; i++ {
		b.WriteString(`if string :matches "${a}${a}${a}${a}" "*x*x*x*y" { keep; }`)
	}
	s, err := Compile([]byte(b.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := s.Run(ctx, &Env{})
	if !errors.Is(err, ErrLimit) || !res.ImplicitKeep {
		t.Fatalf("got %v, %+v", err, res)
	}
}

func TestMaxActions(t *testing.T) {
	var b strings.Builder
	b.WriteString(`require "fileinto";`)
	for i := 0; i < 40; i++ {
		b.WriteString(`fileinto "f` + itoa(i) + `";`)
	}
	s, _ := Compile([]byte(b.String()), nil)
	res, err := s.Run(context.Background(), &Env{})
	if !errors.Is(err, ErrLimit) || len(res.Actions) != 0 || !res.ImplicitKeep {
		t.Fatalf("got %v, %v", err, res.Lines())
	}
}

// RFC 6609 include: loader, :optional, loops.
func TestInclude(t *testing.T) {
	scripts := map[string]string{
		"a":    `require ["include", "fileinto"]; fileinto "from-a"; include "b";`,
		"b":    `require ["include", "fileinto"]; fileinto "from-b"; return; fileinto "never";`,
		"loop": `require "include"; include "loop";`,
	}
	opts := &Options{Include: func(loc IncludeLocation, name string) ([]byte, error) {
		if s, ok := scripts[name]; ok && loc == Personal {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}}
	s, err := Compile([]byte(`require "include"; include "a"; include :optional "missing"; keep;`), opts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background(), &Env{})
	if err != nil || strings.Join(res.Lines(), ",") != `fileinto "from-a",fileinto "from-b",keep` {
		t.Fatalf("%v %q", err, res.Lines())
	}
	if _, err := Compile([]byte(`require "include"; include "loop";`), opts); err == nil || !strings.Contains(err.Error(), "includes itself") {
		t.Fatalf("loop: %v", err)
	}
	if _, err := Compile([]byte(`require "include"; include "missing";`), opts); err == nil {
		t.Fatal("missing include compiled")
	}
}

func TestVariableLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(`require "variables";`)
	for i := 0; i < 300; i++ {
		b.WriteString(`set "v` + itoa(i) + `" "x";`)
	}
	if _, err := Compile([]byte(b.String()), nil); err == nil || !strings.Contains(err.Error(), "more than 255 variables") {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkCompile(b *testing.B) {
	src := []byte(benchScript)
	for i := 0; i < b.N; i++ {
		if _, err := Compile(src, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRun(b *testing.B) {
	s, err := Compile([]byte(benchScript), nil)
	if err != nil {
		b.Fatal(err)
	}
	m, _ := ParseMessage([]byte(testMsg))
	env := &Env{Envelope: Envelope{From: "alice@example.com", To: "me+x@example.net"}, Message: m}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := s.Run(ctx, env); err != nil {
			b.Fatal(err)
		}
	}
}

// benchScript is a typical user script: list filing, spam, vacation.
const benchScript = `require ["fileinto", "envelope", "subaddress", "variables", "imap4flags", "vacation", "relational", "comparator-i;ascii-numeric"];
if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "Junk"; stop; }
if header :matches "list-id" "*<*.*>*" { fileinto "Lists.${2}"; stop; }
if envelope :detail :matches "to" "*" { set :lower "folder" "${1}"; }
if string :is "${folder}" "" { } else { fileinto "${folder}"; }
if address :domain :is "from" ["example.com", "example.org"] { addflag "\\Flagged"; }
if header :contains "subject" ["invoice", "order", "hello"] { fileinto :flags "\\Seen" "Orders"; }
vacation :days 7 :subject "Away" "I am away.";
`

// RFC 5228 5.4: the null sender is "" for :all and has no local part or
// domain. sieve-test cannot take a null sender, so this is not in the
// oracle corpus.
func TestNullSender(t *testing.T) {
	null := func() *Env { return &Env{Envelope: Envelope{From: "", To: "me@example.net"}} }
	tc := func(name, test string, want string) golden {
		w := []string{"implicit keep"}
		if want != "" {
			w = []string{`fileinto "yes"`}
		}
		return golden{name: name, env: null(), script: `require ["fileinto", "envelope"]; if ` + test + ` { fileinto "yes"; }`, want: w}
	}
	runGolden(t, []golden{
		tc("is empty", `envelope :is "from" ""`, "yes"),
		tc("matches any", `envelope :matches "from" "*"`, "yes"),
		tc("no localpart", `envelope :localpart :matches "from" "*"`, ""),
		tc("no domain", `envelope :domain :is "from" ""`, ""),
	})
}

func TestRunSequence(t *testing.T) {
	compile := func(src string) *Script {
		s, err := Compile([]byte(src), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	m, _ := ParseMessage([]byte(testMsg))
	for _, c := range []struct {
		scripts []string
		want    string
		err     bool
	}{
		{[]string{`require "fileinto"; fileinto "a";`, `discard;`}, `fileinto "a"`, false},
		{[]string{`keep;`, `require "fileinto"; fileinto "b";`}, `keep,fileinto "b"`, false},
		{[]string{`require "imap4flags"; addflag "x";`, ``}, `implicit keep :flags "x"`, false},
		{[]string{`require ["fileinto", "copy"]; fileinto :copy "a";`, `require "reject"; keep; reject "no";`}, `fileinto :copy "a",implicit keep`, true},
	} {
		var ss []*Script
		for _, s := range c.scripts {
			ss = append(ss, compile(s))
		}
		res, err := RunSequence(context.Background(), &Env{Message: m}, ss...)
		if got := strings.Join(res.Lines(), ","); got != c.want || (err != nil) != c.err {
			t.Errorf("%q: got %q, %v; want %q", c.scripts, got, err, c.want)
		}
	}
}

func TestDecodeHeader(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain",
		"=?UTF-8?B?SGVsbG8=?= =?UTF-8?B?V29ybGQ=?=":      "HelloWorld",
		"a =?utf-8?q?caf=C3=A9?= b":                      "a café b",
		"=?x-unknown?q?x=41y?=":                          "xAy",
		"=?x-unknown?q?=E9t=E9?=":                        "été",
		"=?utf-8?q?a?=   =?utf-8?q?b?= =?utf-8?q?broken": "ab=?utf-8?q?broken",
		"=? not a word ?=":                               "=? not a word ?=",
	} {
		if got := decodeHeader(in); got != want {
			t.Errorf("decodeHeader(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOptions(t *testing.T) {
	// An administrator's capability list makes the others unknown.
	opts := &Options{Extensions: []string{"fileinto"}, Name: "user.sieve"}
	if _, err := Compile([]byte(`require "fileinto"; fileinto "a";`), opts); err != nil {
		t.Fatal(err)
	}
	_, err := Compile([]byte(`require "vacation"; vacation "x";`), opts)
	if err == nil || err.Error() != `user.sieve:1:9: unknown Sieve capability "vacation" in require` {
		t.Fatalf("got %v", err)
	}
	if _, err := Compile([]byte(strings.Repeat("#", 2000)), &Options{MaxScriptSize: 1000}); err == nil {
		t.Fatal("oversized script compiled")
	}
	if _, err := Compile([]byte("keep;\n\xff"), nil); err == nil || !strings.Contains(err.Error(), ":2:1: script is not valid UTF-8") {
		t.Fatalf("invalid UTF-8: %v", err)
	}
}

// known() searches Extensions by bisection.
func TestExtensionsSorted(t *testing.T) {
	if !sort.StringsAreSorted(Extensions) {
		t.Fatal("Extensions must stay sorted")
	}
}

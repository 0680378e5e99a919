# vlmtpd — see README.md. `make run` tries it out, `make test` runs every test.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)
BIN     := bin/vlmtpd
PKGS    := ./...

.PHONY: build test test-short check run fuzz lint setup clean bench man readme install

build:
	$(GO) build -o $(BIN) ./cmd/vlmtpd

# Installs the Debian packages the tests use (when root), runs the checks,
# then the whole suite: unit, golden, end-to-end, interop and backend tests.
# internal/testsummary prints go test's usual lines, then what was skipped
# and why (nothing may skip under CI=true: those tests fail instead).
test: setup check
	@mkdir -p bin; { $(GO) test -json -count=1 -shuffle=on -timeout 20m $(PKGS); echo $$? > bin/.test-status; } \
		| $(GO) run ./internal/testsummary; s=$$?; st=$$(cat bin/.test-status); rm -f bin/.test-status; \
		test $$s -eq 0 && test $$st -eq 0

# The unit tests only (no built binary, no MTAs): the edit loop.
test-short:
	$(GO) test -count=1 -shuffle=on $$($(GO) list $(PKGS) | grep -v '/tests$$')

# Habits that catch mistakes early: formatting, vet, staticcheck, and the
# race detector on the packages with concurrency.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
RACE_PKGS   := ./server/... ./store/ ./worker/ ./maps/ ./maps/socketmap/ ./internal/... ./privsep/ ./parent/
check: lint
	$(GO) run $(STATICCHECK) $(PKGS)
	$(GO) test -count=1 -race -shuffle=on $(RACE_PKGS)

setup:
	@.ci/setup

# Serves config.example.toml as you: mail lands under run/mail.
run: build
	./$(BIN) quickstart -config config.example.toml

# vlmtpd(8), generated from the commands' own help texts, and
# vlmtpd.toml(5), from the settings table (server/config/settings.go).
man: build
	./$(BIN) man > docs/vlmtpd.8
	./$(BIN) man -section 5 > docs/vlmtpd.toml.5

# The README's settings table, from the same table.
readme:
	$(GO) test ./server/config -run TestREADMETable -update

# Installs the binary, the man pages, the systemd units and the example
# configuration (as vlmtpd.toml.example, never over a real one).
PREFIX  ?= /usr/local
DESTDIR ?=
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/vlmtpd
	./$(BIN) man > bin/vlmtpd.8
	install -D -m 0644 bin/vlmtpd.8 $(DESTDIR)$(PREFIX)/share/man/man8/vlmtpd.8
	./$(BIN) man -section 5 > bin/vlmtpd.toml.5
	install -D -m 0644 bin/vlmtpd.toml.5 $(DESTDIR)$(PREFIX)/share/man/man5/vlmtpd.toml.5
	install -D -m 0644 dist/vlmtpd.service $(DESTDIR)/etc/systemd/system/vlmtpd.service
	install -D -m 0644 dist/vlmtpd.socket $(DESTDIR)/etc/systemd/system/vlmtpd.socket
	install -D -m 0644 config.example.toml $(DESTDIR)/etc/vlmtpd/vlmtpd.toml.example

# Runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# vlmtpd against a private Dovecot LMTP with the same smtp-source load; see
# docs/benchmarks.md. Uses the packages of `make setup`; as root vlmtpd runs
# privilege-separated, as a user both servers run as you.
# BENCHFLAGS="-scale 0.2" for a quick run.
bench: setup
	$(GO) run ./bench $(BENCHFLAGS)

# Each file's first comment says which process runs it (docs/architecture.md).
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	@missing=$$(for f in $$(git ls-files '*.go' | grep -v '_test\.go$$'); do head -1 $$f | grep -q '^// Runs in: ' || echo $$f; done); \
		test -z "$$missing" || { echo "first line is not '// Runs in: <process>.':" $$missing; exit 1; }
	$(GO) vet $(PKGS)

clean:
	rm -rf bin run

// Runs in: an administrator's command (one-shot process).

package main

import (
	"fmt"
	"runtime/debug"
)

// version is set at link time (-ldflags "-X main.version=…"); otherwise
// the module's build information is used.
var version = ""

func init() {
	commands["version"] = command{"print the version", func(args []string) int {
		if code, ok := parseFlags(newFlagSet("version"), args); !ok {
			return code
		}
		fmt.Println("vlmtpd", versionString())
		return 0
	}}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

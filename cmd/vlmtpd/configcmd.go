// Runs in: an administrator's command.
//
// `vlmtpd config`: the effective configuration, like postconf.

package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/vlmtpd/vlmtpd/server/config"
)

func init() {
	commands["config"] = command{"print the effective configuration (-n: what differs from the defaults)", runConfig}
}

func runConfig(args []string) int {
	fs := newFlagSet("config")
	path := fs.String("config", defaultConfig, "configuration file")
	changed := fs.Bool("n", false, "print only the settings whose values differ from their defaults")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd config:", err)
		return 1
	}
	names := fs.Args()
	if len(names) == 0 {
		names = config.Names()
	}
	code := 0
	if *changed {
		data, err := os.ReadFile(cfg.Path)
		var nd []string
		if err == nil {
			nd, err = config.NonDefault(cfg.Path, data)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vlmtpd config:", err)
			return 1
		}
		names = slices.DeleteFunc(names, func(n string) bool {
			if _, known := cfg.Value(n); !known {
				return false // reported below
			}
			return !slices.Contains(nd, n)
		})
	}
	for _, n := range names {
		v, ok := cfg.Value(n)
		if !ok {
			fmt.Fprintf(os.Stderr, "vlmtpd config: unknown setting %q\n", n)
			code = 1
			continue
		}
		fmt.Printf("%s = %s\n", n, v)
	}
	return code
}

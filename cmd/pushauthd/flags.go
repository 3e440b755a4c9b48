package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// errHelp means usage was asked for (--help, -h); errVersion means the
// build was (--version). Neither is a problem: pushauthd prints and exits 0.
var (
	errHelp    = errors.New("help requested")
	errVersion = errors.New("version requested")
)

// flagSetting is one --name value from the command line, applied after the
// YAML file and the environment so that flags win.
type flagSetting struct {
	flag, value string
	o           option
}

// parsedArgs is what the command line says.
type parsedArgs struct {
	config    string // --config, "" if not given
	hasConfig bool
	settings  []flagSetting
	help      bool
	version   bool
	errs      []error // one per bad flag or stray argument
}

// parseArgs reads the command line without stopping at the first problem,
// so that a bad flag is reported together with every other problem of the
// configuration. Flags are --name value, --name=value, or with one dash.
func parseArgs(args []string, opts []option) parsedArgs {
	var p parsedArgs
	byFlag := map[string]option{}
	for _, o := range opts {
		byFlag[flagName(o.key)] = o
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			for _, a := range args[i+1:] {
				p.errs = append(p.errs, fmt.Errorf("unexpected argument %q", a))
			}
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			p.errs = append(p.errs, fmt.Errorf("unexpected argument %q", arg))
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
		switch name {
		case "h", "help":
			p.help = true
			continue
		case "version":
			p.version = true
			continue
		}
		o, known := byFlag[name]
		if !hasValue && i+1 < len(args) && (known || name == "config" || !strings.HasPrefix(args[i+1], "-")) {
			i++
			value, hasValue = args[i], true
		}
		switch {
		case name == "config":
			if !hasValue {
				p.errs = append(p.errs, errors.New("--config needs a file name"))
				continue
			}
			p.config, p.hasConfig = value, true
		case !known:
			p.errs = append(p.errs, fmt.Errorf("--%s: no such flag", name))
		case !hasValue:
			p.errs = append(p.errs, fmt.Errorf("--%s needs a value (%s)", name, typeName(o)))
		default:
			p.settings = append(p.settings, flagSetting{flag: "--" + name, value: value, o: o})
		}
	}
	return p
}

// typeName names the kind of value an option takes, for --help.
func typeName(o option) string {
	switch o.field.Interface().(type) {
	case time.Duration:
		return "duration"
	case int:
		return "int"
	case []string:
		return "list"
	}
	return "string"
}

// fmtDefault is an option's default as it would be written: "15s" rather
// than "15s0ms", "720h" rather than "720h0m0s", lists comma-separated.
func fmtDefault(o option) string {
	switch v := o.field.Interface().(type) {
	case time.Duration:
		s := v.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	case []string:
		return strings.Join(v, ",")
	}
	return fmt.Sprint(o.field.Interface())
}

// printUsage writes pushauthd's usage: its commands and every setting with
// its type, environment variable and default.
func printUsage(w io.Writer) {
	cfg := DefaultConfig()
	fmt.Fprint(w, `usage: pushauthd [flags]                      run the server
       pushauthd migrate up|down|version [flags]  change the database schema by hand
       pushauthd reseal [flags]                   re-seal stored secrets under the first secret_key
       pushauthd help | --help                   show this text
       pushauthd version | --version             show the build

Every setting is a flag, an environment variable (PUSHAUTH_ and the YAML key in
upper case) and a key of the YAML file that --config names; a flag beats the
environment, which beats the file. Durations are written like 15s, 10m or 720h;
lists are comma-separated.

flags:
  --config file
        YAML configuration file (env PUSHAUTH_CONFIG)
`)
	for _, o := range cfg.options() {
		fmt.Fprintf(w, "  --%s %s\n        %s (env %s", flagName(o.key), typeName(o), o.help, envName(o.key))
		if d := fmtDefault(o); d != "" {
			fmt.Fprintf(w, "; default %s", d)
		}
		fmt.Fprintln(w, ")")
	}
}

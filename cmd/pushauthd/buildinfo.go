package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// modulePath is the module pushauthd is built from, for builds that carry
// no module information.
const modulePath = "github.com/pushauth/pushauth"

// build is what a binary knows of how it was built.
type build struct {
	Version  string // -ldflags -X main.version, else the module version
	Module   string // module path
	ModVer   string // module version: a tag, a pseudo-version or (devel)
	Commit   string // VCS revision, "" if not stamped
	Time     string // VCS commit time
	Modified bool   // built from a tree with uncommitted changes
	Go       string // Go version
}

// buildInfo reads the build from the binary: the go command stamps the
// module version and, for go build in a git checkout, the commit.
func buildInfo() build {
	b := build{Version: version, Module: modulePath, ModVer: "(devel)", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Path != "" {
		b.Module = info.Main.Path
	}
	if info.Main.Version != "" {
		b.ModVer = info.Main.Version
	}
	if info.GoVersion != "" {
		b.Go = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	if b.Version == "dev" && b.ModVer != "(devel)" {
		b.Version = b.ModVer
	}
	return b
}

// printVersion writes the build, one fact a line.
func printVersion(w io.Writer) {
	b := buildInfo()
	commit := "unknown (built without VCS information, e.g. by go run)"
	if b.Commit != "" {
		commit = b.Commit
		if b.Time != "" {
			commit += " (" + b.Time + ")"
		}
		if b.Modified {
			commit += ", with uncommitted changes"
		}
	}
	fmt.Fprintf(w, "pushauthd %s\nmodule:  %s %s\ncommit:  %s\ngo:      %s %s/%s\n",
		b.Version, b.Module, b.ModVer, commit, b.Go, runtime.GOOS, runtime.GOARCH)
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestREADME runs the README's shell blocks, in order, against one fresh
// server configured like pushauthd's defaults, so that following the README
// block by block works and the README cannot drift from the code. Every
// line of a block must be understood here: a new kind of line fails the
// test until this runner knows how to run it. The two terminals of the
// journey run side by side, the test typing what a person would.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	toolsMod, err := os.ReadFile(filepath.Join("..", "..", "tools", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(t, string(readme))
	if len(blocks) < 4 {
		t.Fatalf("found %d sh blocks in the README, want at least 4", len(blocks))
	}
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url, func(o *server.Options) {
			// A fresh pushauthd: its limits, its regions.
			o.Approval = approval.DefaultConfig()
			o.Limits = server.DefaultLimits()
			o.Registration.AllowedRegions = []string{"NL", "BE", "LU", "DE", "FR", "GB", "IE"}
		})
		// The README's commands run in the server's working directory.
		t.Chdir(t.TempDir())
		if err := os.Mkdir("data", 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("data", "admin-token"), []byte(ts.AdminToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := &readmeRun{t: t, ts: ts, toolsMod: string(toolsMod), vars: map[string]string{}}
		for _, b := range blocks {
			for i := 0; i < len(b); i++ {
				i += r.line(b, i)
			}
		}
		r.finish()
	})
}

// shellLine is one logical line of a shell block: continuation lines and
// quotes spanning lines joined.
type shellLine struct {
	lineNo int // in the README
	text   string
}

// shellBlocks returns the logical lines of every ```sh block.
func shellBlocks(t *testing.T, readme string) [][]shellLine {
	t.Helper()
	var blocks [][]shellLine
	var cur []shellLine
	in := false
	pending, start := "", 0
	for n, line := range strings.Split(readme, "\n") {
		switch {
		case !in && line == "```sh":
			in, cur = true, nil
			continue
		case in && line == "```":
			if pending != "" {
				t.Fatalf("README.md:%d: unterminated line in a sh block: %s", start, pending)
			}
			in = false
			blocks = append(blocks, cur)
			continue
		case !in:
			continue
		}
		if pending == "" {
			start = n + 1
		} else {
			pending += "\n"
		}
		pending += line
		if _, err := shellWords(pending, nil); err == errOpenQuote {
			continue
		}
		if strings.HasSuffix(pending, "\\") {
			pending = strings.TrimSuffix(pending, "\\")
			continue
		}
		cur = append(cur, shellLine{lineNo: start, text: pending})
		pending = ""
	}
	return blocks
}

var errOpenQuote = fmt.Errorf("unterminated quote")

// shellWords splits a line as sh does for the README's simple lines: single
// and double quotes, $NAME expanded from vars outside single quotes, a
// comment from an unquoted # at a word's start.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words, nil
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errOpenQuote
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, errOpenQuote
			}
			w.WriteString(expandVars(strings.ReplaceAll(s[i+1:j], `\"`, `"`), vars))
			i = j
			inWord = true
		case c == '$':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			w.WriteString(vars[s[i+1:j]])
			i = j - 1
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

var varPattern = regexp.MustCompile(`\$[A-Za-z_][A-Za-z0-9_]*`)

func expandVars(s string, vars map[string]string) string {
	return varPattern.ReplaceAllStringFunc(s, func(v string) string { return vars[v[1:]] })
}

// readmeRun is the state of one run through the README: variables, the
// last API key, the terminals left running.
type readmeRun struct {
	t        *testing.T
	ts       *servertest.TestServer
	toolsMod string
	vars     map[string]string // shell variables; exported ones reach the CLI
	exported map[string]string

	keySecret, keyPrefix string // of the last API key created
	pairing              *proc  // "device pair", waiting for its words to be used
	phrase               string // the words it shows
	watch                *proc  // "device watch"
}

var (
	catAssign    = regexp.MustCompile(`^([A-Z_]+)=\$\(cat ([^)\s]+)\)$`)
	serviceLine  = regexp.MustCompile(`^# ([a-z][a-z0-9.]*\.[A-Za-z0-9]+)$`)
	wordsPattern = `Type these words on the login page: ([a-z]+ [a-z]+)\n`
	shownNumber  = `Show this number on the login page: ([0-9]+)\n`
)

// line runs the logical line b[i] and returns how many lines after it it
// consumed too (the expected output of "grpcurl list").
func (r *readmeRun) line(b []shellLine, i int) int {
	t := r.t
	l := b[i]
	at := fmt.Sprintf("README.md:%d", l.lineNo)
	text := strings.TrimSpace(l.text)
	if text == "" || strings.HasPrefix(text, "#") {
		return 0
	}
	if m := catAssign.FindStringSubmatch(text); m != nil {
		v, err := os.ReadFile(m[2])
		if err != nil {
			t.Fatalf("%s: %s: %v", at, text, err)
		}
		r.vars[m[1]] = strings.TrimSpace(string(v))
		return 0
	}
	words, err := shellWords(text, r.vars)
	if err != nil || len(words) == 0 {
		t.Fatalf("%s: cannot split %q: %v", at, text, err)
	}
	switch {
	case words[0] == "alias":
		if !strings.HasPrefix(words[1], "grpcurl=go tool -modfile=tools/go.mod grpcurl") || !strings.Contains(r.toolsMod, "github.com/fullstorydev/grpcurl/cmd/grpcurl") {
			t.Fatalf("%s: grpcurl is not the one tools/go.mod pins: %s", at, text)
		}
	case words[0] == "export" && len(words) == 2:
		name, value, _ := strings.Cut(words[1], "=")
		if value == "pak_…" {
			value = r.keySecret
		}
		r.vars[name] = value
		if r.exported == nil {
			r.exported = map[string]string{}
		}
		r.exported[name] = value
	case words[0] == "grpcurl":
		return r.grpcurl(at, words[1:], b[i+1:])
	case slices.Equal(words, []string{"go", "run", "./cmd/pushauthd"}):
		// The server: the test's own, running.
	case words[len(words)-1] == "scripts/test.sh":
		// The test suite: this test is part of it.
	case slices.Equal(words, []string{"go", "build", "-o", "pushauth", "./cmd/pushauth"}):
		// The CLI: the test runs it in-process.
	case len(words) > 2 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/pushauth":
		r.cli(at, words[3:])
	case words[0] == "./pushauth":
		r.cli(at, words[1:])
	default:
		t.Fatalf("%s: the README test does not know how to run %q: teach cmd/pushauth/readme_test.go", at, text)
	}
	return 0
}

// cli runs a pushauth command line as its terminal would.
func (r *readmeRun) cli(at string, args []string) {
	t := r.t
	cmd := strings.Join(args[:min(2, len(args))], " ")
	for i, a := range args {
		switch {
		case a == "pak_…" && cmd == "admin key":
			args[i] = r.keyPrefix
		case a == "pak_…":
			args[i] = r.keySecret
		case i > 0 && args[i-1] == "--phrase":
			if r.phrase == "" {
				t.Fatalf("%s: rp pair without words from device pair", at)
			}
			args[i] = r.phrase
		}
	}
	if strings.Contains(strings.Join(args, " "), "…") {
		t.Fatalf("%s: a placeholder the test cannot fill: %q", at, args)
	}
	p := start(t, r.ts, r.exported, args...)
	p.showsSecret = cmd == "admin key" && args[2] == "create"
	switch cmd {
	case "device pair":
		r.pairing = p
		r.phrase = p.waitOut(wordsPattern, 1)[1]
		return
	case "rp pair":
		if r.pairing == nil {
			t.Fatalf("%s: rp pair without device pair running", at)
		}
		r.pairing.waitErr(`\[y/N\] $`, 1)
		r.pairing.write("y\n")
		p.want(0, []string{"connected: ", "signature verified"}, nil)
		r.pairing.want(0, []string{"Connected: account "}, nil)
		r.pairing = nil
		return
	case "device watch":
		p.waitErr(`Watching for requests`, 1)
		r.watch = p
		return
	case "rp login":
		if r.watch == nil {
			t.Fatalf("%s: rp login without device watch running", at)
		}
		number := p.waitOut(shownNumber, 1)[1]
		r.watch.waitErr(`Approve, deny or report fraud\? \[a/d/r\] $`, 1)
		r.watch.write("a\n")
		r.watch.waitErr(`Type the number shown on the login page: $`, 1)
		r.watch.write(number + "\n")
		p.want(0, []string{"approved: ", "signature verified"}, []string{"queued", "seen on device"})
		r.watch.waitOut(`Approved: the login of `, 1)
		return
	}
	res := p.wait()
	if res.code != 0 {
		t.Fatalf("%s: pushauth %s: exit %d\nstdout: %s\nstderr: %s", at, strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	if cmd == "admin key" && args[2] == "create" {
		r.keySecret = secretPattern.FindString(res.stdout)
		r.keyPrefix, _, _ = strings.Cut(r.keySecret, ".")
		if r.keySecret == "" || !strings.Contains(res.stdout, r.keyPrefix) {
			t.Fatalf("%s: no secret, or its prefix, in:\n%s", at, res.stdout)
		}
	}
}

// grpcurl does what grpcurl does for the README's calls: "list" through
// reflection, and a method called with the JSON of -d.
func (r *readmeRun) grpcurl(at string, args []string, after []shellLine) (consumed int) {
	t := r.t
	md := metadata.MD{}
	var data string
	plaintext := false
	var rest []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-plaintext":
			plaintext = true
		case "-H":
			i++
			k, v, ok := strings.Cut(args[i], ": ")
			if !ok {
				t.Fatalf("%s: header %q is not \"name: value\"", at, args[i])
			}
			if v == "Bearer pak_…" {
				v = "Bearer " + r.keySecret
			}
			md.Append(k, v)
		case "-d":
			i++
			data = args[i]
		default:
			rest = append(rest, args[i])
		}
	}
	if !plaintext || len(rest) != 2 || rest[0] != "127.0.0.1:8470" {
		t.Fatalf("%s: want grpcurl -plaintext [-H h] [-d json] 127.0.0.1:8470 METHOD, got %q", at, args)
	}
	ctx := metadata.NewOutgoingContext(servertest.Context(t), md)
	if rest[1] == "list" {
		var want []string
		for _, l := range after {
			m := serviceLine.FindStringSubmatch(strings.TrimSpace(l.text))
			if m == nil {
				break
			}
			want = append(want, m[1])
			consumed++
		}
		stream, err := reflectionpb.NewServerReflectionClient(r.ts.Conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatalf("%s: reflection: %v", at, err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatalf("%s: reflection: %v", at, err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: reflection: %v", at, err)
		}
		var got []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			got = append(got, s.GetName())
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: grpcurl list shows %q, the README says %q", at, got, want)
		}
		return consumed
	}
	svc, method, ok := strings.Cut(rest[1], "/")
	if !ok {
		t.Fatalf("%s: %q is not SERVICE/METHOD", at, rest[1])
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	sd, isSvc := d.(protoreflect.ServiceDescriptor)
	if err != nil || !isSvc || sd.Methods().ByName(protoreflect.Name(method)) == nil {
		t.Fatalf("%s: no method %s: %v", at, rest[1], err)
	}
	md2 := sd.Methods().ByName(protoreflect.Name(method))
	inType, err := protoregistry.GlobalTypes.FindMessageByName(md2.Input().FullName())
	if err != nil {
		t.Fatal(err)
	}
	outType, err := protoregistry.GlobalTypes.FindMessageByName(md2.Output().FullName())
	if err != nil {
		t.Fatal(err)
	}
	in, out := inType.New().Interface(), outType.New().Interface()
	if data != "" {
		if err := protojson.Unmarshal([]byte(data), in); err != nil {
			t.Fatalf("%s: -d is not a %s: %v", at, md2.Input().FullName(), err)
		}
	}
	if err := r.ts.Conn.Invoke(ctx, "/"+rest[1], in, out, grpc.WaitForReady(false)); err != nil {
		t.Fatalf("%s: grpcurl %s: %v", at, rest[1], err)
	}
	if method == "CreateApiKey" {
		b, _ := protojson.Marshal(out)
		r.keySecret = secretPattern.FindString(string(b))
		r.keyPrefix, _, _ = strings.Cut(r.keySecret, ".")
		if r.keySecret == "" {
			t.Fatalf("%s: no secret in %s", at, b)
		}
	}
	return 0
}

// finish ends the terminals left running, as Ctrl-C would, and checks
// what the README's prose promises of the state they leave.
func (r *readmeRun) finish() {
	ctx := r.ts.AdminCtx(servertest.Context(r.t))
	rp, err := r.ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: "mijn-portal"})
	if err != nil || !rp.GetRelyingParty().GetPolicy().GetAllowBackupRestore() {
		r.t.Errorf("mijn-portal does not allow backup restore, which the README's backup paragraph needs: %v %v", rp, err)
	}
	if st := readState(r.t, defaultStateFile); st.DeviceCredential == "" { // and mode 0600
		r.t.Errorf("%s holds no registered device", defaultStateFile)
	}
	if r.pairing != nil {
		r.t.Errorf("device pair still waits: the README never used its words")
	}
	if r.watch != nil {
		r.watch.cancel()
		r.watch.want(0, nil, []string{"Stopped watching."})
	}
}

// TestDocLinks: every relative link of the README and the docs names a file
// of this repository (none outside it), and the README links the
// architecture.
func TestDocLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(root, "docs", "*", "*.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, doc := range append(append([]string{filepath.Join(root, "README.md")}, docs...), more...) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := filepath.Join(filepath.Dir(doc), target)
			rel, err := filepath.Rel(root, path)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %s, outside the repository", doc, m[1])
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links %s, which does not exist", doc, m[1])
			}
		}
	}
	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	if !strings.Contains(string(readme), "](docs/architecture.md)") {
		t.Error("the README does not link docs/architecture.md")
	}
}

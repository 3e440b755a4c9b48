package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process the harness runs (a pushauthd replica or a
// nats-server node): started again with the same command line after a kill,
// so it keeps its ports and data directory. Its output goes to a log file
// that outlives it, so a failed run can be read afterwards.
type proc struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the running process exited
	err  error         // its exit status, once done
	logf *os.File
}

// start runs the process (again). It is an error to start a running one.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", p.name)
		}
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== harness: starting %s at %s\n", p.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a signal to the harness (Ctrl-C) does not
	// reach the children, which the harness stops itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.logf = cmd, done, f
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		fmt.Fprintf(f, "=== harness: %s exited at %s: %v\n", p.name, time.Now().UTC().Format(time.RFC3339Nano), err)
		f.Close()
		close(done)
	}()
	return nil
}

// running reports whether the process runs.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pid is the running process's id, 0 if none.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// signal sends sig and waits up to wait for the process to exit; with
// SIGKILL it always exits. It returns the exit error (nil for a clean exit).
func (p *proc) signal(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(sig)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return fmt.Errorf("%s did not exit within %s of %s", p.name, wait, sig)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// kill stops the process with SIGKILL (the crash of a machine, for the
// process's state) and waits for it.
func (p *proc) kill() { _ = p.signal(syscall.SIGKILL, time.Minute) }

// exited is closed when the current process exits.
func (p *proc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	var lines [][]byte
	for _, l := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		// Successful calls are most of a replica's log and say nothing
		// about a failure.
		if bytes.Contains(l, []byte(`"msg":"rpc"`)) && bytes.Contains(l, []byte(`"code":"OK"`)) {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// rss is the process's resident memory in bytes, from /proc.
func (p *proc) rss() (int64, error) {
	pid := p.pid()
	if pid == 0 {
		return 0, errors.New("not running")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS")
}

// fds is the number of the process's open file descriptors.
func (p *proc) fds() (int, error) {
	pid := p.pid()
	if pid == 0 {
		return 0, errors.New("not running")
	}
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(ents), err
}

// freePorts returns n TCP ports on 127.0.0.1 that were free a moment ago.
// They are held together until all are picked, so they differ.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lis []net.Listener
	defer func() {
		for _, l := range lis {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lis = append(lis, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// poll calls f every interval until it returns nil or ctx ends; it returns
// f's last error with ctx's. Waiting on real processes has no event to wait
// for: their state is polled, always with a deadline.
func poll(ctx context.Context, interval time.Duration, f func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func makeTemp() (string, error) { return os.MkdirTemp("", "pushauth-build-") }
func removeAll(dir string)      { _ = os.RemoveAll(dir) }

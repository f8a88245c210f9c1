// Package devcluster runs billflow's production topology on one machine for
// development and fault runs: Temporal's own server binary with Postgres
// persistence and Postgres visibility, and billflow's api and worker
// binaries, each as its own process that can be SIGKILLed and started again.
// Nothing here is shipped.
package devcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one process (api or worker) that can be SIGKILLed and
// started again with the same environment, its output appended to one log.
type Proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	offset int64 // the log's size when the process was last started
}

// NewProc describes a process; its output goes to dir/name.log.
func NewProc(name, bin, dir string, env []string, args ...string) *Proc {
	return &Proc{name: name, bin: bin, args: args, env: env, log: filepath.Join(dir, name+".log")}
}

// Start launches the process unless it is running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err == nil {
		p.offset = fi.Size()
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a kill takes the worker's Chromium with it,
	// as a crashed container or machine would.
	// Pdeathsig: a killed fault run or test leaves no billflow behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// Kill SIGKILLs the process group and waits for it to be gone.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Stop asks the process to end (SIGTERM), then kills it after grace.
func (p *Proc) Stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Chromium children of a worker that ended on its own.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// Exited reports whether a started process has ended by itself.
func (p *Proc) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitLogged waits until the process, since its last start, has logged
// line (such as the SDK's "Started Worker"), or exited, or timeout passed.
func (p *Proc) WaitLogged(line string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		off := p.offset
		p.mu.Unlock()
		if b, err := os.ReadFile(p.log); err == nil && int64(len(b)) >= off && strings.Contains(string(b[off:]), line) {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited; see %s", p.name, p.log)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log %q in %s", p.name, line, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreePort asks the kernel for an unused loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitReady polls url until it answers 200.
func WaitReady(ctx context.Context, url string, p *Proc) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited while starting; see %s", p.name, p.log)
		}
		select {
		case <-ctx.Done():
			return errors.New("not ready in 90s: " + url)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// BuildBinary builds pkg (a main package of this module or a tool of its
// go.mod) into dir/name.
func BuildBinary(ctx context.Context, dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	root, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(root))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the billflow module: pass the binaries' paths")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Dir(mod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// Name is the process's name, as in its log's.
func (p *Proc) Name() string { return p.name }

// Log is the path of the process's log.
func (p *Proc) Log() string { return p.log }

// Running reports whether the process was started and not killed or stopped.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

package devpg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// startTimeout bounds the wait for a postmaster to accept connections when
// ctx has no earlier deadline (crash recovery of a dev database included).
const startTimeout = 90 * time.Second

// maxLogSize is the size past which the log is moved to devpg.log.1 at start.
const maxLogSize = 10 << 20

// postmaster is one run of the server, a child of this process.
type postmaster struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has been waited for
	waitErr error         // valid after done
	logFile *os.File
}

// launchLocked starts the postmaster and waits until it accepts connections.
// With an automatic port it retries on a new port when another process took
// the chosen one in the meantime.
func (c *Cluster) launchLocked(ctx context.Context) error {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		began := time.Now()
		p, logOffset, err := c.spawn()
		if err != nil {
			return err
		}
		err = c.waitReady(ctx, p)
		if err == nil {
			c.proc = p
			c.log.Debug("postmaster accepting connections", "port", c.port, "pid", p.cmd.Process.Pid,
				"took", time.Since(began).Round(time.Millisecond))
			return nil
		}
		_ = p.stop()
		tail := c.logTail(logOffset)
		if c.autoPort && attempt < attempts && bindFailed(tail) {
			c.log.Info("port taken, retrying on another", "port", c.port)
			if c.port, err = freePort(); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("devpg: start postgres on 127.0.0.1:%d: %w; server log %s:\n%s",
			c.port, err, c.logPath, indent(tail))
	}
}

func bindFailed(log string) bool {
	return strings.Contains(log, "could not bind") || strings.Contains(log, "Address already in use") ||
		strings.Contains(log, "could not create any TCP/IP sockets")
}

// spawn starts the postmaster in its own process group with the parent-death
// signal set, and returns the log offset its output starts at.
func (c *Cluster) spawn() (*postmaster, int64, error) {
	if fi, err := os.Stat(c.logPath); err == nil && fi.Size() > maxLogSize {
		_ = os.Rename(c.logPath, c.logPath+".1")
	}
	lf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("devpg: open log: %w", err)
	}
	if err := c.as.chown(c.logPath); err != nil {
		lf.Close()
		return nil, 0, err
	}
	off, _ := lf.Seek(0, io.SeekEnd)
	fmt.Fprintf(lf, "---- devpg: starting postgres on 127.0.0.1:%d at %s\n", c.port, time.Now().Format(time.RFC3339))

	args := []string{
		"-D", c.dataDir,
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", `unix_socket_directories="` + strings.ReplaceAll(c.sockDir, `"`, `""`) + `"`,
		"-c", "unix_socket_permissions=0700",
		"-c", "logging_collector=off",
		"-c", "log_destination=stderr",
	}
	if c.opts.Fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	// Not tied to a context: the server outlives Start and ends with Stop.
	cmd := c.as.command(context.Background(), filepath.Join(c.binDir, "postgres"), args...)
	cmd.Dir = c.dataDir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group: a terminal's Ctrl-C reaches the dev stack, which
	// then stops the database in order. Parent-death signal: if this process
	// dies, the server shuts down (fast) instead of lingering.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT

	p := &postmaster{cmd: cmd, done: make(chan struct{}), logFile: lf}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that forked the child
		// exits, not the process: keep this goroutine on its thread until the
		// server is gone so the Go runtime can never retire that thread early.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		lf.Close()
		return nil, 0, fmt.Errorf("devpg: run postgres: %w", err)
	}
	return p, off, nil
}

// waitReady polls the unix socket until the server accepts a connection, the
// server exits, or the deadline passes.
func (c *Cluster) waitReady(ctx context.Context, p *postmaster) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var lastErr error
	for {
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(attemptCtx, c.superConnString("postgres"))
		cancelAttempt()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		lastErr = err
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited during startup (%v)", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// exited reports whether the server has exited (and been waited for).
func (p *postmaster) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop shuts the server down, escalating from fast (SIGINT) to immediate
// (SIGQUIT) to SIGKILL of its whole process group, and waits for it.
func (p *postmaster) stop() error {
	defer p.logFile.Close()
	pid := p.cmd.Process.Pid
	steps := []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, 60 * time.Second}, {syscall.SIGQUIT, 10 * time.Second}, {syscall.SIGKILL, 10 * time.Second}}
	for _, s := range steps {
		select {
		case <-p.done:
			return nil
		default:
		}
		if s.sig == syscall.SIGKILL {
			// The group holds the backends too; it still exists because its
			// leader has not been waited for.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		} else {
			_ = p.cmd.Process.Signal(s.sig)
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(s.wait):
		}
	}
	return fmt.Errorf("postgres (pid %d) did not exit", pid)
}

// logTail returns the end of what the server logged since off.
func (c *Cluster) logTail(off int64) string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 4 << 10
	if fi, err := f.Stat(); err == nil && fi.Size()-off > max {
		off = fi.Size() - max
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// clearLeftover deals with what an earlier run on this data directory left:
//   - a postmaster still running (a crashed dev stack's, say): shut down, as
//     this Start replaces it;
//   - a postmaster.pid whose PID now belongs to an unrelated process: removed
//     with the socket lock files, since the server would take that process for
//     another postmaster and refuse to start (a dead PID it handles itself);
//   - backends orphaned by a killed postmaster: killed, since the server will
//     not start while they hold the old shared memory.
func (c *Cluster) clearLeftover() error {
	pidPath := filepath.Join(c.dataDir, "postmaster.pid")
	pid, err := readPostmasterPID(pidPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		c.log.Info("removing unreadable postmaster.pid", "err", err)
		if err := os.Remove(pidPath); err != nil {
			return fmt.Errorf("devpg: remove postmaster.pid: %w", err)
		}
	case processAlive(pid) && c.isOurPostmaster(pid):
		c.log.Warn("postgres from an earlier run still running on this data directory; shutting it down", "pid", pid)
		if err := stopForeign(pid); err != nil {
			return fmt.Errorf("devpg: shut down earlier postgres (pid %d) on %s: %w", pid, c.dataDir, err)
		}
	case processAlive(pid):
		c.log.Info("removing stale postmaster.pid whose PID was reused", "pid", pid)
		if err := os.Remove(pidPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("devpg: remove stale postmaster.pid: %w", err)
		}
		if err := c.removeSocketFiles(); err != nil {
			return err
		}
	}
	orphans := c.serverProcs()
	if len(orphans) == 0 {
		return nil
	}
	c.log.Warn("killing orphaned postgres processes of an earlier run", "pids", orphans)
	for _, p := range orphans {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if len(c.serverProcs()) == 0 {
			return nil
		}
	}
	return fmt.Errorf("devpg: orphaned postgres processes on %s would not die: %v", c.dataDir, c.serverProcs())
}

// serverProcs lists live postgres processes working in this data directory.
func (c *Cluster) serverProcs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && processAlive(n) && c.isOurPostmaster(n) {
			pids = append(pids, n)
		}
	}
	return pids
}

// removeSocketFiles deletes sockets and their lock files in the socket
// directory; called only when no server runs on this data directory.
func (c *Cluster) removeSocketFiles() error {
	matches, _ := filepath.Glob(filepath.Join(c.sockDir, ".s.PGSQL.*"))
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("devpg: remove stale socket file: %w", err)
		}
	}
	return nil
}

// readPostmasterPID reads the first line of postmaster.pid.
func readPostmasterPID(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return 0, fmt.Errorf("empty postmaster.pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad postmaster.pid %q", line)
	}
	return pid, nil
}

// isOurPostmaster reports whether pid is a postgres process (postmaster or
// backend) working in this cluster's data directory: the server chdirs there
// at start, and its children inherit that.
func (c *Cluster) isOurPostmaster(pid int) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	if b := filepath.Base(exe); b != "postgres" && b != "postmaster" {
		return false
	}
	cwd, err := os.Readlink(proc + "/cwd")
	if err != nil {
		return false
	}
	want := c.dataDir
	if r, err := filepath.EvalSymlinks(want); err == nil {
		want = r
	}
	return cwd == want
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat returns the state and parent PID from /proc/<pid>/stat.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parens
	if i < 0 || i+2 >= len(s) {
		return 0, 0, false
	}
	fields := strings.Fields(s[i+2:])
	if len(fields) < 2 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0][0], ppid, err == nil
}

// stopForeign shuts down a postmaster that is not our child (left by an
// earlier run), escalating like postmaster.stop and killing its children if
// it comes to SIGKILL, so no backend keeps the shared memory busy.
func stopForeign(pid int) error {
	steps := []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, 30 * time.Second}, {syscall.SIGQUIT, 10 * time.Second}, {syscall.SIGKILL, 10 * time.Second}}
	for _, s := range steps {
		if s.sig == syscall.SIGKILL {
			for _, child := range childrenOf(pid) {
				_ = syscall.Kill(child, syscall.SIGKILL)
			}
		}
		if err := syscall.Kill(pid, s.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		for deadline := time.Now().Add(s.wait); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
			if !processAlive(pid) {
				return nil
			}
		}
	}
	return errors.New("still running after SIGKILL")
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(n); ok && ppid == pid {
			kids = append(kids, n)
		}
	}
	return kids
}

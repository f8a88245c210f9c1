package devpg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runAs is the account the postgres binaries run under: the `postgres`
// system account when we are root (postgres refuses root), else ourselves.
type runAs struct {
	root   bool
	uid    int
	gid    int
	groups []uint32
	name   string
	home   string
}

func currentRunAs() (runAs, error) {
	if os.Geteuid() != 0 {
		a := runAs{uid: os.Geteuid(), gid: os.Getegid()}
		if u, err := user.Current(); err == nil {
			a.name, a.home = u.Username, u.HomeDir
		}
		return a, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("devpg: running as root needs the postgres system account to run the server as (apt-get install postgresql creates it): %w", err)
	}
	a := runAs{root: true, name: u.Username, home: u.HomeDir}
	if a.uid, err = strconv.Atoi(u.Uid); err != nil {
		return runAs{}, fmt.Errorf("devpg: postgres uid %q: %w", u.Uid, err)
	}
	if a.gid, err = strconv.Atoi(u.Gid); err != nil {
		return runAs{}, fmt.Errorf("devpg: postgres gid %q: %w", u.Gid, err)
	}
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			a.groups = append(a.groups, uint32(n))
		}
	}
	return a, nil
}

// command builds a command that runs as a, with an environment cleared of
// libpq and locale variables that would change what initdb or the server do.
func (a runAs) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = a.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if a.root {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid), Groups: a.groups}
	}
	return cmd
}

func (a runAs) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "PG"), strings.HasPrefix(k, "LC_"),
			k == "LANG", k == "LANGUAGE", k == "HOME", k == "USER", k == "LOGNAME":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C")
	if a.home != "" {
		env = append(env, "HOME="+a.home)
	}
	if a.name != "" {
		env = append(env, "USER="+a.name, "LOGNAME="+a.name)
	}
	return env
}

// chown gives path to the server's account; a no-op unless we are root.
func (a runAs) chown(path string) error {
	if !a.root {
		return nil
	}
	if err := os.Lchown(path, a.uid, a.gid); err != nil {
		return fmt.Errorf("devpg: chown %s: %w", path, err)
	}
	return nil
}

// searchBit is the permission bit that decides whether a may traverse a
// directory with the given owner and group.
func (a runAs) searchBit(st *syscall.Stat_t) fs.FileMode {
	switch {
	case int(st.Uid) == a.uid:
		return 0o100
	case int(st.Gid) == a.gid || slices.Contains(a.groups, st.Gid):
		return 0o010
	default:
		return 0o001
	}
}

// findBinDir locates the directory holding initdb and postgres.
func findBinDir(explicit string) (string, error) {
	ok := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	for _, d := range []struct{ dir, from string }{{explicit, "Options.BinDir"}, {os.Getenv("PG_BIN_DIR"), "PG_BIN_DIR"}} {
		if d.dir == "" {
			continue
		}
		if !ok(d.dir) {
			return "", fmt.Errorf("devpg: %s=%s holds no initdb and postgres", d.from, d.dir)
		}
		return d.dir, nil
	}
	if d := "/usr/lib/postgresql/15/bin"; ok(d) {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVer := "", -1.0
	for _, d := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err == nil && v > bestVer && ok(d) {
			best, bestVer = d, v
		}
	}
	if best != "" {
		return best, nil
	}
	if p, err := exec.LookPath("postgres"); err == nil && ok(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("devpg: PostgreSQL server binaries (initdb, postgres) not found: install Debian's postgresql package or set PG_BIN_DIR")
}

// maxSocketDir keeps "<dir>/.s.PGSQL.65535" within the 107 bytes a unix
// socket path may have.
const maxSocketDir = 107 - len("/.s.PGSQL.65535")

// socketDir is the data directory itself when its path is short enough, else
// a directory under the temp dir named after the data directory's hash.
func socketDir(dataDir string) (string, error) {
	if len(dataDir) <= maxSocketDir {
		return dataDir, nil
	}
	sum := sha256.Sum256([]byte(dataDir))
	d := filepath.Join(os.TempDir(), "devpg-"+hex.EncodeToString(sum[:6]))
	if len(d) > maxSocketDir {
		return "", fmt.Errorf("devpg: no socket directory short enough for %s (TMPDIR too long)", dataDir)
	}
	return d, nil
}

// prepareParent creates the directories above the data directory (0755) and,
// when we are root, makes every one of them traversable by the postgres
// account: a temp dir created by root is 0700, and postgres must reach its
// data directory by path.
func (c *Cluster) prepareParent() error {
	parent := filepath.Dir(c.dataDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("devpg: create %s: %w", parent, err)
	}
	if c.sockDir != c.dataDir {
		if err := os.MkdirAll(c.sockDir, 0o700); err != nil {
			return fmt.Errorf("devpg: create socket dir: %w", err)
		}
		if err := c.as.chown(c.sockDir); err != nil {
			return err
		}
		if err := c.makeTraversable(filepath.Dir(c.sockDir)); err != nil {
			return err
		}
	}
	return c.makeTraversable(parent)
}

// makeTraversable adds the one search bit the server's account needs to dir
// and each of its ancestors that lacks it (never read or write bits).
func (c *Cluster) makeTraversable(dir string) error {
	if !c.as.root {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("devpg: stat %s: %w", d, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("devpg: stat %s: no owner information", d)
		}
		if bit := c.as.searchBit(st); fi.Mode().Perm()&bit == 0 {
			mode := fi.Mode().Perm() | bit
			if err := os.Chmod(d, mode); err != nil {
				return fmt.Errorf("devpg: make %s traversable for %s: %w", d, c.as.name, err)
			}
			c.log.Info("made directory traversable for the postgres account", "dir", d, "mode", mode)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// ensureInitialized creates a cluster when the data directory holds none:
// a copy of a pristine cluster cached in the user's cache directory (a copy
// takes a fraction of initdb's second or two, which every test package would
// pay), or initdb on a cache miss, whose result then fills the cache. Either
// is made in a sibling directory and renamed into place, so a crash midway
// never leaves a half-made cluster in DataDir. Copies share initdb's system
// identifier, which only replication tooling would notice.
func (c *Cluster) ensureInitialized(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		return nil
	}
	if entries, err := os.ReadDir(c.dataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("devpg: %s is not empty but holds no cluster (no PG_VERSION): remove it or choose another DataDir", c.dataDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("devpg: read %s: %w", c.dataDir, err)
	}
	began := time.Now()
	tmp := c.dataDir + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("devpg: remove leftover %s: %w", tmp, err)
	}
	cache := c.initCacheDir()
	how := "copied cached initdb"
	if err := c.copyCluster(cache, tmp); err != nil {
		if cache != "" && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("cached initdb unusable, running initdb", "cache", cache, "err", err)
		}
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("devpg: remove partial copy %s: %w", tmp, err)
		}
		if err := c.initdb(ctx, tmp); err != nil {
			return err
		}
		c.fillCache(cache, tmp)
		how = "ran initdb"
	}
	if err := os.Rename(tmp, c.dataDir); err != nil {
		return fmt.Errorf("devpg: move new cluster into place: %w", err)
	}
	c.log.Info("initialized postgres cluster", "how", how, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// initdb creates a cluster in dir (which must not exist) with devpg's
// pg_hba.conf.
func (c *Cluster) initdb(ctx context.Context, dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("devpg: create %s: %w", dir, err)
	}
	if err := c.as.chown(dir); err != nil {
		return err
	}
	cmd := c.as.command(ctx, filepath.Join(c.binDir, "initdb"), append([]string{"-D", dir}, initdbArgs...)...)
	if c.opts.Fast {
		cmd.Args = append(cmd.Args, "--no-sync")
	}
	cmd.Dir = filepath.Dir(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("devpg: initdb: %w\n%s", err, indent(string(out)))
	}
	return c.writeOwned(filepath.Join(dir, "pg_hba.conf"), []byte(hbaConf), 0o600)
}

// initdbArgs shape every cluster; they are part of the cache key.
var initdbArgs = []string{"-U", superuser, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-instructions"}

// initCacheDir names the cached pristine cluster for these binaries and
// settings, or "" when there is no cache directory. DEVPG_NO_CACHE=1 turns
// the cache off.
func (c *Cluster) initCacheDir() string {
	if os.Getenv("DEVPG_NO_CACHE") != "" {
		return ""
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	fi, err := os.Stat(filepath.Join(c.binDir, "initdb"))
	if err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "v1\n%s\n%d\n%d\n%s\n%s\n%d\n", c.binDir, fi.Size(), fi.ModTime().UnixNano(),
		strings.Join(initdbArgs, " "), os.Getenv("TZ"), c.as.uid)
	h.Write([]byte(hbaConf))
	return filepath.Join(base, "billflow-devpg", "initdb-"+hex.EncodeToString(h.Sum(nil)[:8]))
}

// fillCache copies a pristine cluster into the cache; failures only cost
// speed later, so they are logged, not returned. Concurrent fillers race
// benignly: the first rename wins.
func (c *Cluster) fillCache(cache, src string) {
	if cache == "" {
		return
	}
	if _, err := os.Stat(filepath.Join(cache, "PG_VERSION")); err == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
		c.log.Warn("cannot cache initdb", "err", err)
		return
	}
	tmp, err := os.MkdirTemp(filepath.Dir(cache), "fill-")
	if err != nil {
		c.log.Warn("cannot cache initdb", "err", err)
		return
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(src, filepath.Join(tmp, "pg"), nil); err != nil {
		c.log.Warn("cannot cache initdb", "err", err)
		return
	}
	_ = os.Rename(filepath.Join(tmp, "pg"), cache)
}

// copyCluster copies the cached cluster to dst, owned by the server's account.
func (c *Cluster) copyCluster(cache, dst string) error {
	if cache == "" {
		return fs.ErrNotExist
	}
	if _, err := os.Stat(filepath.Join(cache, "PG_VERSION")); err != nil {
		return err
	}
	return copyTree(cache, dst, c.as.chown)
}

// copyTree copies a tree of directories and regular files with their modes,
// calling own on each copy when not nil.
func copyTree(src, dst string, own func(string) error) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected file type %s", p)
		}
		if own != nil {
			return own(target)
		}
		return nil
	})
}

// copyFile copies src to dst, leaving holes where src has blocks of zeros:
// half of a fresh cluster is a zero-filled WAL segment.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	var size int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			chunk := buf[:n]
			if allZero(chunk) {
				_, err = out.Seek(int64(n), io.SeekCurrent)
			} else {
				_, err = out.Write(chunk)
			}
			if err != nil {
				out.Close()
				return err
			}
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Truncate(size); err != nil { // a trailing hole
		out.Close()
		return err
	}
	return out.Close()
}

func allZero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// hbaConf replaces initdb's pg_hba.conf.
const hbaConf = `# Written by devpg. The unix socket lives in a 0700 directory that only root
# and the cluster's owner can reach, so it trusts; TCP listens on 127.0.0.1
# only and checks passwords.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   scram-sha-256
`

// prepareDataDir gives an existing data directory the owner and mode the
// server insists on (it may come from a run as another user).
func (c *Cluster) prepareDataDir() error {
	fi, err := os.Stat(c.dataDir)
	if err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && c.as.root && (int(st.Uid) != c.as.uid) {
		c.log.Info("giving the data directory to the postgres account", "uid", c.as.uid)
		err := filepath.WalkDir(c.dataDir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return c.as.chown(p)
		})
		if err != nil {
			return fmt.Errorf("devpg: chown data dir: %w", err)
		}
	}
	if fi.Mode().Perm()&^0o750 != 0 {
		if err := os.Chmod(c.dataDir, 0o700); err != nil {
			return fmt.Errorf("devpg: chmod data dir: %w", err)
		}
	}
	return nil
}

// writeOwned writes a file the server's account owns.
func (c *Cluster) writeOwned(path string, data []byte, perm fs.FileMode) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("devpg: write %s: %w", path, err)
	}
	return c.as.chown(path)
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

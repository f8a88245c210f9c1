package devtemporal

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// handedOut remembers every port FreePort returned in this process, so two
// servers started back to back in one test binary never get the same port even
// if the kernel would hand it out again.
var handedOut = struct {
	sync.Mutex
	ports map[int]struct{}
}{ports: map[int]struct{}{}}

// FreePort returns a TCP port on ip that nothing listens on right now. Tests use
// it for the UI and for their own listeners; Start uses it for every internal
// Temporal service.
//
// On Linux the kernel picks ephemeral ports at random and may repeat one soon
// after it was released. To make that unlikely, FreePort connects to the probe
// listener and closes the accepted side first: the port sits in TIME_WAIT for a
// minute, during which bind(:0) will not return it again, while an explicit bind
// (Go sets SO_REUSEADDR) still succeeds.
func FreePort(ip string) (int, error) {
	if ip == "" {
		ip = defaultIP
	}
	for range 20 {
		port, err := probePort(ip)
		if err != nil {
			return 0, err
		}
		handedOut.Lock()
		_, seen := handedOut.ports[port]
		handedOut.ports[port] = struct{}{}
		handedOut.Unlock()
		if !seen {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port on %s: every probe returned a port already handed out", ip)
}

func probePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer l.Close()
	addr := l.Addr().(*net.TCPAddr)

	client, err := net.DialTCP("tcp", nil, addr)
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	// The side that closes first enters TIME_WAIT; it must be the listener's.
	_ = server.Close()
	return addr.Port, nil
}

// checkPortFree fails when something already listens on ip:port, so a taken UI
// port is reported as an error instead of the UI server exiting the process.
func checkPortFree(ip string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

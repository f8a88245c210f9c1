package temporalclient

import "testing"

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7233":        true,
		"localhost:7233":        true,
		"[::1]:7233":            true,
		"10.0.0.5:7233":         false,
		"temporal.example:7233": false,
		"billing.tmprl.cloud":   false, // no port: not something Dial accepts anyway
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// Package testclock is a settable clock for tests of code that takes a
// `func() time.Time`.
package testclock

import (
	"sync"
	"time"
)

// Clock stands still at the time it is set to until Add moves it; it is safe
// for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New gives a clock set to t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

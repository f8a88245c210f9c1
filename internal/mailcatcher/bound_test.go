package mailcatcher

import (
	"strconv"
	"testing"
)

func TestKeepsOnlyTheNewestMessages(t *testing.T) {
	c := &Catcher{}
	for i := range MaxMessages + 5 {
		c.store(&Stored{Subject: strconv.Itoa(i)})
	}
	msgs := c.Messages()
	if len(msgs) != MaxMessages {
		t.Fatalf("kept %d messages, want %d", len(msgs), MaxMessages)
	}
	if got, want := msgs[0].Subject, strconv.Itoa(MaxMessages+4); got != want {
		t.Errorf("newest = %s, want %s", got, want)
	}
	if got, want := msgs[len(msgs)-1].Subject, "5"; got != want {
		t.Errorf("oldest = %s, want %s", got, want)
	}
	if _, ok := c.Message("5"); ok {
		t.Errorf("message 5 (the fifth stored, ID 5) should have been dropped")
	}
	if _, ok := c.Message("6"); !ok {
		t.Errorf("message 6 should be kept")
	}
}

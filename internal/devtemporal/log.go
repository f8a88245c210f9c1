package devtemporal

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// serverLogger adapts the Temporal server's tag logger to slog and drops
// everything below warn: at info the server logs dozens of lines per second of
// membership, shard and task-queue chatter that drowns billflow's own logs.
//
// Once muted is set (by Server.Stop) it drops everything: during shutdown the
// server's internal clients and pollers warn about every connection they lose,
// and some keep retrying for a while after Stop returns.
type serverLogger struct {
	log   *slog.Logger
	muted *atomic.Bool
}

var _ log.Logger = serverLogger{}

func (l serverLogger) Debug(string, ...tag.Tag)           {}
func (l serverLogger) Info(string, ...tag.Tag)            {}
func (l serverLogger) Warn(msg string, tags ...tag.Tag)   { l.emit(slog.LevelWarn, msg, tags) }
func (l serverLogger) Error(msg string, tags ...tag.Tag)  { l.emit(slog.LevelError, msg, tags) }
func (l serverLogger) DPanic(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }
func (l serverLogger) Panic(msg string, tags ...tag.Tag)  { l.emit(slog.LevelError, msg, tags) }
func (l serverLogger) Fatal(msg string, tags ...tag.Tag)  { l.emit(slog.LevelError, msg, tags) }
func (l serverLogger) With(tags ...tag.Tag) log.Logger {
	return serverLogger{log: l.log.With(attrsAny(tags)...), muted: l.muted}
}
func (l serverLogger) emit(lv slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if l.muted.Load() || !l.log.Enabled(ctx, lv) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), t.Value())
	}
	l.log.LogAttrs(ctx, lv, msg, attrs...)
}

func attrsAny(tags []tag.Tag) []any {
	out := make([]any, len(tags))
	for i, t := range tags {
		out[i] = slog.Any(t.Key(), t.Value())
	}
	return out
}

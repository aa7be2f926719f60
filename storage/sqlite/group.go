package sqlite

import (
	"context"
	"sync"
)

// maxGroup bounds how many writes one group commit carries, so that the
// goroutine leading it is not held up by an endless queue.
const maxGroup = 128

// groupCommit batches concurrent autocommit writes into one transaction.
//
// Every token the server issues is one INSERT, and most requests record an
// audit event (a risk decision, a sign-in). Run one by one, each pays a
// whole commit: the modified pages appended to the WAL again, the WAL-index
// locks, and a share of the checkpoints — most of the token endpoint's CPU.
// Writers queue for the single writer connection anyway, so whoever finds
// the queue idle leads: it takes what is queued, runs it in one transaction
// and wakes each writer with its own result, then hands the lead to the
// first writer that queued meanwhile. A lone write runs as before, as one
// autocommit statement; nothing waits for a batch to fill.
//
// A write returns only once its transaction committed, so it is as durable
// and as visible to readers as before. A statement that fails (a duplicate
// key) fails alone: SQLite backs out only that statement and the
// transaction goes on; if the commit fails, every write in it gets the error.
type groupCommit struct {
	mu      sync.Mutex
	queue   []*groupWrite
	running bool
}

type groupWrite struct {
	query string
	args  []any
	err   error
	// done is closed when err is set, or when the write is handed the lead.
	done chan struct{}
	lead bool
}

// groupExec runs one write through the group commit; ctx must not carry a
// transaction.
func (s *Store) groupExec(ctx context.Context, query string, args ...any) error {
	w := &groupWrite{query: query, args: args, done: make(chan struct{})}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if g.running {
		g.mu.Unlock()
		<-w.done
		if !w.lead {
			return w.err
		}
	} else {
		g.running = true
		g.mu.Unlock()
	}

	// Leading: w is first in the queue.
	g.mu.Lock()
	batch := g.queue[:min(len(g.queue), maxGroup)]
	g.queue = g.queue[len(batch):]
	g.mu.Unlock()

	// The writes are others' too: the leader's cancellation must not fail them.
	s.flushGroup(context.WithoutCancel(ctx), batch)

	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		next.lead = true
		close(next.done)
	} else {
		g.running = false
		g.queue = nil
	}
	g.mu.Unlock()
	return w.err
}

// flushGroup runs batch and wakes every write in it but the first (the
// leader, which is running).
func (s *Store) flushGroup(ctx context.Context, batch []*groupWrite) {
	defer func() {
		for _, w := range batch[1:] {
			close(w.done)
		}
	}()
	if len(batch) == 1 {
		_, batch[0].err = s.exec(ctx, batch[0].query, batch[0].args...)
		return
	}
	fail := func(err error) {
		for _, w := range batch {
			if w.err == nil {
				w.err = err
			}
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	for _, w := range batch {
		// Only an already prepared statement: preparing would wait for the
		// writer connection this transaction holds.
		if ps := s.ws.peek(w.query); ps != nil {
			_, w.err = tx.StmtContext(ctx, ps).ExecContext(ctx, w.args...)
		} else {
			_, w.err = tx.ExecContext(ctx, w.query, w.args...)
		}
	}
	if err := tx.Commit(); err != nil {
		fail(err)
	}
}

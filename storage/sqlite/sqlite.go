// Package sqlite is the embedded storage backend, built on modernc.org/sqlite
// (pure Go, no cgo).
//
// A Store keeps two pools on one database file: a single-connection writer,
// so that writers queue fairly in Go instead of spinning in SQLite's busy
// handler, and a pool of readers that run concurrently thanks to WAL. A
// transaction (BeginTx, or the one an Update* method opens) holds the writer
// connection, and every call made with a context carrying it runs on it.
//
// Because there is one writer, a goroutine holding a transaction must make
// all its writes with the context that carries it: a write made with any
// other context waits for the transaction to end, which never comes. For the
// same reason an Update* closure must not call the Store.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/stepwise-id/stepwise/storage"
)

// pragmas are applied by the driver to every new connection, so readers and
// the writer agree. _txlock=immediate takes the write lock at BEGIN, which
// rules out SQLITE_BUSY_SNAPSHOT on read-then-write transactions.
const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" +
	"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_txlock=immediate"

// Store is a storage.Storage backed by one SQLite database file.
type Store struct {
	w  *sql.DB // single writer connection
	r  *sql.DB // concurrent readers
	ws stmtCache
	rs stmtCache
	// group batches concurrent autocommit token inserts (group.go).
	group groupCommit
}

var _ storage.Storage = (*Store)(nil)

// Open opens (creating if needed) the database file at path. It does not
// apply migrations; call Migrate.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.Contains(path, ":memory:") {
		// A private in-memory database would differ per connection, which
		// breaks the reader/writer split.
		return nil, fmt.Errorf("open sqlite: need a file path, got %q", path)
	}
	// A relative path would render as file://name, which SQLite reads as a
	// URI authority; an absolute path is unambiguous.
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: pragmas}
	dsn := u.String()

	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite writer %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite writer %s: %w", path, err)
	}

	// query_only guards against a write slipping onto a reader connection,
	// where it would bypass the writer queue.
	ru := url.URL{Scheme: "file", Path: path, RawQuery: pragmas + "&_pragma=query_only(1)"}
	r, err := sql.Open("sqlite", ru.String())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite readers %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite readers %s: %w", path, err)
	}
	s := &Store{w: w, r: r}
	s.ws.db = w
	s.rs.db = r
	// Before the first Migrate the tables do not exist and this prepares
	// nothing; Migrate warms up again.
	s.warmUp(ctx)
	return s, nil
}

// warmUp prepares the token-endpoint statements on the writer. Inside a
// transaction only statements prepared beforehand can be reused (preparing
// would need the connection the transaction holds), so without this every
// statement of a refresh rotation would be parsed anew.
func (s *Store) warmUp(ctx context.Context) {
	for _, q := range []string{
		createRequestQuery, getRequestQuery, deactivateRequestQuery, deactivatedAtQuery,
		deleteRequestQuery, deleteRequestsByIDQuery, deleteRequestsBySessionQuery,
		getClientQuery, useJTIQuery, getSessionQuery, getCredentialQuery, getAuthRequestQuery,
		createEventQuery,
	} {
		if _, err := s.ws.get(ctx, q); err != nil {
			return
		}
	}
	for _, q := range []string{getRequestQuery, getClientQuery, getSessionQuery, getCredentialQuery} {
		if _, err := s.rs.get(ctx, q); err != nil {
			return
		}
	}
}

// Close releases prepared statements and both pools.
func (s *Store) Close() error {
	s.ws.close()
	s.rs.close()
	return errors.Join(s.r.Close(), s.w.Close())
}

// stmtCache prepares each query once per pool. modernc's prepare parses SQL
// in Go, which is a measurable share of a point lookup.
type stmtCache struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

func (c *stmtCache) peek(q string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[q]
}

func (c *stmtCache) get(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := c.peek(q); st != nil {
		return st, nil
	}
	// Prepare without holding the lock: on the writer, preparing waits for
	// the connection, and the transaction holding it may itself need peek.
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.m[q]; prev != nil {
		st.Close()
		return prev, nil
	}
	if c.m == nil {
		c.m = make(map[string]*sql.Stmt)
	}
	c.m[q] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// txKey is the context key for a transaction. The value records its Store so
// that a context from one Store never leaks a transaction into another.
type txKey struct{}

type txState struct {
	owner *Store
	tx    *sql.Tx
	done  atomic.Bool
}

func (s *Store) txFrom(ctx context.Context) *txState {
	st, _ := ctx.Value(txKey{}).(*txState)
	if st == nil || st.owner != s {
		return nil
	}
	return st
}

// BeginTx starts a write transaction on the single writer connection; it
// waits while another transaction holds it.
func (s *Store) BeginTx(ctx context.Context) (context.Context, error) {
	if s.txFrom(ctx) != nil {
		return ctx, errors.New("begin transaction: context already carries one")
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return ctx, fmt.Errorf("begin transaction: %w", mapErr(err))
	}
	return context.WithValue(ctx, txKey{}, &txState{owner: s, tx: tx}), nil
}

// Commit commits the transaction ctx carries.
func (s *Store) Commit(ctx context.Context) error {
	st := s.txFrom(ctx)
	if st == nil {
		return errors.New("commit: context carries no transaction")
	}
	if !st.done.CompareAndSwap(false, true) {
		return fmt.Errorf("commit: %w", sql.ErrTxDone)
	}
	if err := st.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	return nil
}

// Rollback aborts the transaction ctx carries. After Commit or Rollback it is
// a no-op, so callers may defer it unconditionally.
func (s *Store) Rollback(ctx context.Context) error {
	st := s.txFrom(ctx)
	if st == nil {
		return errors.New("rollback: context carries no transaction")
	}
	if !st.done.CompareAndSwap(false, true) {
		return nil
	}
	if err := st.tx.Rollback(); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// inTx runs fn inside the transaction ctx carries, or inside a new one that
// it commits when fn succeeds.
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.txFrom(ctx) != nil {
		return fn(ctx)
	}
	tctx, err := s.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer s.Rollback(tctx)
	if err := fn(tctx); err != nil {
		return err
	}
	return s.Commit(tctx)
}

// queryRow runs a read of one row by key: on the carried transaction if there is one (it must
// see its own writes), otherwise on the reader pool.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := s.txFrom(ctx); st != nil {
		if ps := s.ws.peek(q); ps != nil {
			return st.tx.StmtContext(ctx, ps).QueryRowContext(ctx, args...)
		}
		return st.tx.QueryRowContext(ctx, q, args...)
	}
	ps, err := s.rs.get(ctx, q)
	if err != nil {
		// Let the error surface from the query itself.
		return s.r.QueryRowContext(ctx, q, args...)
	}
	return ps.QueryRowContext(pointRead(ctx), args...)
}

// pointRead returns the context for a single-row read on the reader pool.
// For a cancellable context (every HTTP request's) the driver starts a
// goroutine per statement to interrupt SQLite on cancellation, which made a
// primary-key lookup take 35–45 µs instead of 20–25 µs with 8 concurrent
// readers on 2 cores. A single-row read by key cannot run long, so it runs
// without cancellation; a context that is already done keeps its
// cancellation and fails as before.
func pointRead(ctx context.Context) context.Context {
	if ctx.Err() != nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := s.txFrom(ctx); st != nil {
		return st.tx.QueryContext(ctx, q, args...)
	}
	ps, err := s.rs.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return ps.QueryContext(ctx, args...)
}

// exec runs a write on the carried transaction or, outside one, as a single
// autocommit statement on the writer.
func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := s.txFrom(ctx); st != nil {
		// Preparing on the writer here would wait for the connection this
		// transaction holds, so use a statement only if it already exists.
		if ps := s.ws.peek(q); ps != nil {
			return st.tx.StmtContext(ctx, ps).ExecContext(ctx, args...)
		}
		return st.tx.ExecContext(ctx, q, args...)
	}
	ps, err := s.ws.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return ps.ExecContext(ctx, args...)
}

// writeRow runs a write that returns a row (INSERT … RETURNING).
func (s *Store) writeRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := s.txFrom(ctx); st != nil {
		return st.tx.QueryRowContext(ctx, q, args...)
	}
	ps, err := s.ws.get(ctx, q)
	if err != nil {
		return s.w.QueryRowContext(ctx, q, args...)
	}
	return ps.QueryRowContext(ctx, args...)
}

// mapErr translates driver errors into storage sentinels, keeping the
// original in the chain for logs.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %v", storage.ErrAlreadyExists, err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_SNAPSHOT, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %v", storage.ErrConflict, err)
		}
	}
	return err
}

// affected reports ErrNotFound when a keyed write touched no row.
func affected(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// Package postgres is the storage backend for multi-replica deployments,
// built on pgx v5 and its connection pool.
//
// Transactions run at READ COMMITTED. Read-modify-write goes through Update*
// methods, which lock the row (SELECT … FOR UPDATE) before calling the
// closure, and state changes that must happen once (deactivating a code,
// recording a jti) are single conditional statements; so no caller needs
// SERIALIZABLE or retry loops. Serialization failures and deadlocks that do
// occur map to storage.ErrConflict.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepwise-id/stepwise/storage"
)

// Store is a storage.Storage backed by a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ storage.Storage = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string; pgxpool options such as pool_max_conns and runtime parameters such
// as search_path are honoured). It does not apply migrations; call Migrate.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may carry a password: do not echo it.
		return nil, fmt.Errorf("open postgres: parse dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// querier is what the pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// txKey is the context key for a transaction; the value records its Store so
// a context never carries one Store's transaction into another.
type txKey struct{}

type txState struct {
	owner *Store
	tx    pgx.Tx
	done  atomic.Bool
}

func (s *Store) txFrom(ctx context.Context) *txState {
	st, _ := ctx.Value(txKey{}).(*txState)
	if st == nil || st.owner != s {
		return nil
	}
	return st
}

// db returns the carried transaction, or the pool.
func (s *Store) db(ctx context.Context) querier {
	if st := s.txFrom(ctx); st != nil {
		return st.tx
	}
	return s.pool
}

// BeginTx starts a READ COMMITTED transaction carried by the returned context.
func (s *Store) BeginTx(ctx context.Context) (context.Context, error) {
	if s.txFrom(ctx) != nil {
		return ctx, errors.New("begin transaction: context already carries one")
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
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
		return fmt.Errorf("commit: %w", pgx.ErrTxClosed)
	}
	if err := st.tx.Commit(ctx); err != nil {
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
	// Roll back even if ctx was cancelled, or the connection would go back
	// to the pool mid-transaction.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := st.tx.Rollback(rctx); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// inTx runs fn inside the carried transaction, or a new one it commits when
// fn succeeds.
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

// mapErr translates driver errors into storage sentinels, keeping the
// original text for logs.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %v", storage.ErrAlreadyExists, err)
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return fmt.Errorf("%w: %v", storage.ErrConflict, err)
		}
	}
	return err
}

// insert runs an INSERT that must add a row, reporting ErrAlreadyExists when
// a unique key is taken. ON CONFLICT DO NOTHING reports the clash as zero
// rows instead of an error, which in PostgreSQL would abort a carried
// transaction: the caller can act on ErrAlreadyExists and carry on.
func (s *Store) insert(ctx context.Context, q string, args ...any) error {
	tag, err := s.db(ctx).Exec(ctx, q+` ON CONFLICT DO NOTHING`, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrAlreadyExists
	}
	return nil
}

// affected reports ErrNotFound when a keyed write touched no row.
func affected(tag pgconn.CommandTag) error {
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// Column encodings: NULL for the zero time, an empty list and an empty byte
// slice; times truncated to PostgreSQL's microsecond precision and read back
// in UTC.

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Truncate(time.Microsecond)
}

func fromTS(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

func list(v []string) any {
	if len(v) == 0 {
		return nil
	}
	return v
}

func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func listOrNil(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return v
}

// collect reads every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

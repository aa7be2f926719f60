// Package conformance is the test suite every storage backend must pass.
//
// A backend's own test calls RunTests and RunConcurrencyTests with a
// constructor that returns a fresh, empty, migrated store per call. The suite
// pins down the behaviour callers rely on beyond the method signatures:
// sentinel errors, list orderings, how times and empty slices round-trip,
// transaction semantics and the races that protocol code depends on.
//
// What the suite pins down beyond storage.go:
//
//   - Times come back in UTC, truncated to the microsecond; the zero time
//     round-trips as the zero time.
//   - Nil and empty slices ([]string and []byte alike) both come back nil.
//   - Empty keys (ID, Username, Hash, jti, Kind/Signature) are refused.
//   - Lists: clients by ID, users by username, sessions and credentials
//     oldest first, consents by client ID, keys newest first, events newest
//     first with ties broken by ID descending (bytewise order everywhere).
//   - An Update* closure gets the current row and may not change its key;
//     its error is returned (errors.Is) and nothing is written. Username
//     clashes on update give ErrAlreadyExists.
//   - Deletes of a missing row give ErrNotFound. DeleteUser also deletes the
//     user's sessions, the requests those sessions authorised, consents and
//     credentials; DeleteClient also deletes its consents and requests.
//   - DeactivateRequest on a missing row gives ErrNotFound; a refused one
//     leaves DeactivatedAt alone. DeleteRequestsBySession("") deletes nothing.
//   - UseJTI blocks a jti while expiresAt > now and accepts it again after.
//   - GarbageCollect deletes rows whose expiry (PublishUntil for keys) is
//     strictly before now; rows with no expiry, clients, users, consents,
//     credentials and events are never collected.
//   - Transactions: reads in a transaction see its writes, other contexts do
//     not until Commit; Update* joins a carried transaction; nested BeginTx,
//     and Commit or Rollback without a transaction, are errors; Rollback
//     after Commit changes nothing, so callers may defer it.
//   - ErrConflict may be returned under contention; the concurrency tests
//     retry on it, as callers should.
package conformance

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/storage"
)

// subTest is one named test of the suite.
type subTest struct {
	name string
	run  func(t *testing.T, s storage.Storage)
}

func runAll(t *testing.T, newStore func(t *testing.T) storage.Storage, tests []subTest) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

// RunTests runs the functional suite: every entity's create, get, list,
// update and delete, the Requests state machine, transactions and garbage
// collection.
func RunTests(t *testing.T, newStore func(t *testing.T) storage.Storage) {
	t.Helper()
	runAll(t, newStore, []subTest{
		{"Clients/CreateGet", testClientCreateGet},
		{"Clients/EmptySlices", testClientEmptySlices},
		{"Clients/List", testClientList},
		{"Clients/Update", testClientUpdate},
		{"Clients/Delete", testClientDelete},
		{"Users/CRUD", testUserCRUD},
		{"Users/UsernameUnique", testUserUsernameUnique},
		{"Users/DeleteCascades", testUserDeleteCascades},
		{"Sessions/CRUD", testSessionCRUD},
		{"Consents/CRUD", testConsentCRUD},
		{"AuthRequests/CRUD", testAuthRequestCRUD},
		{"Requests/CreateGet", testRequestCreateGet},
		{"Requests/Deactivate", testRequestDeactivate},
		{"Requests/DeactivateGrace", testRequestDeactivateGrace},
		{"Requests/Delete", testRequestDelete},
		{"Requests/DeleteByID", testRequestDeleteByID},
		{"Requests/DeleteBySession", testRequestDeleteBySession},
		{"Requests/Count", testRequestCount},
		{"Keys/CRUD", testKeyCRUD},
		{"RegistrationTokens/CRUD", testRegistrationTokenCRUD},
		{"AssertionJTIs/Use", testUseJTI},
		{"Credentials/CRUD", testCredentialCRUD},
		{"Events/CreateGet", testEventCreateGet},
		{"Events/List", testEventList},
		{"Events/DefaultLimit", testEventDefaultLimit},
		{"Tx/CommitKeeps", testTxCommit},
		{"Tx/RollbackDiscards", testTxRollback},
		{"Tx/UpdateInTx", testTxUpdateInTx},
		{"Tx/Misuse", testTxMisuse},
		{"Tx/SurvivesErrors", testTxSurvivesErrors},
		{"Tx/UpdateClosureError", testUpdateClosureError},
		{"GarbageCollect", testGarbageCollect},
	})
}

// RunConcurrencyTests runs the races: concurrent deactivation, jti replay,
// read-modify-write through Update* and through explicit transactions.
func RunConcurrencyTests(t *testing.T, newStore func(t *testing.T) storage.Storage) {
	t.Helper()
	runAll(t, newStore, []subTest{
		{"DeactivateRequestOneWinner", testConcurrentDeactivate},
		{"UseJTIOneWinner", testConcurrentUseJTI},
		{"UpdateClientNoLostUpdate", testConcurrentUpdateClient},
		{"UpdateCredentialNoLostUpdate", testConcurrentUpdateCredential},
		{"TxReadModifyWrite", testConcurrentTx},
		{"RefreshRotation", testConcurrentRotation},
		{"ReadersDuringTx", testReadersDuringTx},
		{"WritersDuringTx", testWritersDuringTx},
	})
}

// base is a time with nanoseconds in a non-UTC zone, so round-trip checks
// catch both lost precision and lost zone normalisation.
func base() time.Time {
	return time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+1", 3600))
}

// normalize returns what a backend must give back for v: every time
// truncated to the microsecond and in UTC, every empty slice nil.
func normalize[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	normalizeValue(rv)
	return v
}

func normalizeValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if t, ok := v.Interface().(time.Time); ok {
			if !t.IsZero() {
				v.Set(reflect.ValueOf(t.Truncate(time.Microsecond).UTC()))
			} else {
				v.Set(reflect.ValueOf(time.Time{}))
			}
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normalizeValue(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		// Copy so that normalising never writes into the caller's slice.
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(cp, v)
		for i := range cp.Len() {
			normalizeValue(cp.Index(i))
		}
		v.Set(cp)
	}
}

// checkEqual fails unless got equals normalize(want), and checks that every
// non-zero time in got is in UTC.
func checkEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	want = normalize(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
	checkUTC(t, what, reflect.ValueOf(got))
}

func checkUTC(t *testing.T, what string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		if tm, ok := v.Interface().(time.Time); ok {
			if !tm.IsZero() && tm.Location() != time.UTC {
				t.Fatalf("%s: time %v is in %v, want UTC", what, tm, tm.Location())
			}
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				checkUTC(t, what, v.Field(i))
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			checkUTC(t, what, v.Index(i))
		}
	}
}

// mustErr fails unless errors.Is(err, target).
func mustErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// must fails on a non-nil error.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ids lists a field of each element, for ordering checks.
func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func checkOrder(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The column encodings. Times are Unix microseconds in UTC with NULL for the
// zero time; string lists are JSON arrays with NULL for an empty list; byte
// slices are BLOBs with NULL for an empty one. Reading back gives nil for
// empty lists and byte slices, whichever was stored.

func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func strList(v []string) (any, error) {
	if len(v) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode list: %w", err)
	}
	return string(b), nil
}

func parseStrList(v sql.NullString) ([]string, error) {
	if !v.Valid || v.String == "" {
		return nil, nil
	}
	if out, ok := splitPlainList(v.String); ok {
		return out, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(v.String), &out); err != nil {
		return nil, fmt.Errorf("decode list: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// splitPlainList decodes a JSON string array without escapes, which is what
// json.Marshal writes for URIs, scopes and grant types, in one allocation
// plus the strings (encoding/json costs about ten per list, and GetClient
// decodes six lists on every token request). Without backslashes no string
// can contain a quote, so `","` can only be a separator. Anything else
// reports false and goes to encoding/json.
func splitPlainList(s string) ([]string, bool) {
	if len(s) < 4 || s[:2] != `["` || s[len(s)-2:] != `"]` || strings.IndexByte(s, '\\') >= 0 {
		return nil, false
	}
	return strings.Split(s[2:len(s)-2], `","`), true
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

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// lists encodes several string lists at once, stopping at the first error.
func lists(vs ...[]string) ([]any, error) {
	out := make([]any, len(vs))
	for i, v := range vs {
		e, err := strList(v)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

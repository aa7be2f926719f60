package sqlite

import (
	"database/sql"
	"encoding/json"
	"reflect"
	"testing"
)

func TestParseStrListMatchesJSON(t *testing.T) {
	for _, in := range [][]string{
		{""}, {"", ""}, {"a"}, {"openid", "offline_access"}, {"https://app.example/cb?x=1&y=2"},
		{`quote"inside`}, {`back\slash`}, {`a","b`}, {"<tag>"}, {"ünïcode", "日本"}, {"]", "["}, {`","`},
	} {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseStrList(sql.NullString{String: string(b), Valid: true})
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("%s: got %q, want %q", b, got, in)
		}
	}
}

func FuzzParseStrList(f *testing.F) {
	f.Add("a", "b")
	f.Add(`","`, "")
	f.Fuzz(func(t *testing.T, a, b string) {
		in := []string{a, b}
		enc, err := json.Marshal(in)
		if err != nil {
			t.Skip()
		}
		var want []string
		if err := json.Unmarshal(enc, &want); err != nil {
			t.Skip()
		}
		got, err := parseStrList(sql.NullString{String: string(enc), Valid: true})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %q, want %q", enc, got, want)
		}
	})
}

package resource_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/oauth/resource"
)

// oauth.Ladder is usable as a resource.Ladder as it stands.
var _ resource.Ladder = oauth.Ladder{}

func TestDefaultLadderMatchesProvider(t *testing.T) {
	if got, want := []string(resource.DefaultLadder()), oauth.DefaultLadder().Values(); !slices.Equal(got, want) {
		t.Fatalf("resource.DefaultLadder() = %v, oauth.DefaultLadder() = %v", got, want)
	}
}

func TestProviderLadderInRoutes(t *testing.T) {
	l, err := oauth.NewLadder([]string{"a1", "a2", "a3", "a4"})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := resource.ParseRoutes([]resource.RouteConfig{{Match: "/x", ACR: "a3"}}, resource.RoutesOptions{Ladder: l})
	if err != nil {
		t.Fatal(err)
	}
	if ch := tbl.Authorize("GET", "/x", &resource.Claims{ACR: "a4"}, time.Now()); ch != nil {
		t.Fatalf("a4 should satisfy a3: %v", ch)
	}
	if ch := tbl.Authorize("GET", "/x", &resource.Claims{ACR: "a2"}, time.Now()); ch == nil || ch.Code != resource.CodeInsufficientUserAuthentication {
		t.Fatalf("a2 should not satisfy a3: %v", ch)
	}
}

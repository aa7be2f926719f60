package adaptive

import (
	"strings"

	useragent "github.com/medama-io/go-useragent"
)

// Agent is a parsed user-agent string.
type Agent struct {
	Browser        string
	BrowserVersion string
	OS             string
	OSVersion      string
	Device         string // desktop, mobile, tablet, tv, bot, or ""
}

// UAParser parses user-agent strings with medama-io/go-useragent (a
// maintained, allocation-free trie parser covering browser family and
// version, OS and device type); the OS version, which it does not report,
// is read from the platform token here. Build one at start-up and share it:
// it is safe for concurrent use.
type UAParser struct {
	p *useragent.Parser
}

// NewUAParser builds the parser (a few milliseconds: it loads a trie).
func NewUAParser() *UAParser {
	return &UAParser{p: useragent.NewParser()}
}

// Parse parses one user-agent string.
func (u *UAParser) Parse(s string) Agent {
	if s == "" {
		return Agent{}
	}
	ua := u.p.Parse(s)
	a := Agent{
		Browser:        string(ua.Browser()),
		BrowserVersion: ua.BrowserVersion(),
		OS:             string(ua.OS()),
		Device:         strings.ToLower(string(ua.Device())),
	}
	a.OSVersion = osVersion(s, a.OS)
	return a
}

// Apply fills the agent fields of s that are still empty from its UserAgent.
func (u *UAParser) Apply(s *Signals) {
	if s.UserAgent == "" || (s.Browser != "" && s.OS != "" && s.Device != "") {
		return
	}
	a := u.Parse(s.UserAgent)
	if s.Browser == "" {
		s.Browser, s.BrowserVersion = a.Browser, a.BrowserVersion
	}
	if s.OS == "" {
		s.OS, s.OSVersion = a.OS, a.OSVersion
	}
	if s.Device == "" {
		s.Device = a.Device
	}
}

// osVersion pulls the OS version out of the platform token for the common
// platforms; "" when it cannot tell.
func osVersion(s, os string) string {
	var marker string
	switch os {
	case "Windows":
		marker = "Windows NT "
	case "MacOS":
		marker = "Mac OS X "
	case "iOS":
		marker = " OS "
	case "Android":
		marker = "Android "
	default:
		return ""
	}
	i := strings.Index(s, marker)
	if i < 0 {
		return ""
	}
	rest := s[i+len(marker):]
	end := 0
	for end < len(rest) && (rest[end] >= '0' && rest[end] <= '9' || rest[end] == '.' || rest[end] == '_') {
		end++
	}
	return strings.ReplaceAll(rest[:end], "_", ".")
}

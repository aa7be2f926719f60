package web

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
)

// deviceLifetime is how long a browser keeps its device cookie after its
// last sign-in: 400 days, the longest lifetime browsers honour.
const deviceLifetime = 400 * 24 * time.Hour

// deviceCookieName is the device cookie's name (and the name its MAC binds).
const deviceCookieName = "stepwise_device"

// newDeviceCodecs builds the codecs that sign and encrypt device cookies from
// the cookie key pairs: a device id cannot be forged or read by script.
func newDeviceCodecs(pairs [][]byte) []securecookie.Codec {
	codecs := securecookie.CodecsFromPairs(pairs...)
	for _, c := range codecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			sc.MaxAge(int(deviceLifetime / time.Second))
		}
	}
	return codecs
}

// deviceName prefixes the device cookie's name with __Host- on https.
func (s *Server) deviceName() string {
	if s.secure {
		return "__Host-" + deviceCookieName
	}
	return deviceCookieName
}

// DeviceID returns the id carried by the request's long-lived signed device
// cookie, or "" when there is none or it does not verify. The risk gate
// reads it: a device the user signed in from before is the strongest sign of
// a returning user.
func (s *Server) DeviceID(r *http.Request) string {
	c, err := r.Cookie(s.deviceName())
	if err != nil || c.Value == "" || len(c.Value) > 4096 {
		return ""
	}
	var id string
	if err := securecookie.DecodeMulti(deviceCookieName, c.Value, &id, s.deviceCodecs...); err != nil {
		return ""
	}
	return id
}

// deviceCookie keeps the browser's device id alive on a successful sign-in:
// it re-issues the existing cookie (renewing its lifetime) or mints a new
// id. It returns the id for the audit event, or "" if none could be set
// (the sign-in itself never fails for it).
func (s *Server) deviceCookie(w http.ResponseWriter, r *http.Request) string {
	id := s.DeviceID(r)
	if id == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			s.log.WarnContext(r.Context(), "device id", "err", err)
			return ""
		}
		id = base64.RawURLEncoding.EncodeToString(b)
	}
	v, err := securecookie.EncodeMulti(deviceCookieName, id, s.deviceCodecs...)
	if err != nil {
		s.log.WarnContext(r.Context(), "encode device cookie", "err", err)
		return ""
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.deviceName(),
		Value:    v,
		Path:     "/",
		MaxAge:   int(deviceLifetime / time.Second),
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	})
	return id
}

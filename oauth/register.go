package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/stepwise-id/stepwise/storage"
)

// RegistrationPath is where the RFC 7591 registration endpoint is served
// (the same path as PathRegister); each client's RFC 7592 configuration
// endpoint is RegistrationPath + "/" + client_id.
const RegistrationPath = PathRegister

// maxRegistrationBody caps registration request bodies.
const maxRegistrationBody = 64 << 10

// RegisterRoutes adds the dynamic client registration endpoints to mux
// (Go 1.22+ patterns):
//
//	POST   /oauth2/register              RFC 7591 registration, initial access token
//	GET    /oauth2/register/{client_id}  RFC 7592 read, registration access token
//	PUT    /oauth2/register/{client_id}  RFC 7592 update
//	DELETE /oauth2/register/{client_id}  RFC 7592 delete
//
// issuer is the server's issuer URL, used to build registration_client_uri.
func (r *ClientRegistry) RegisterRoutes(mux *http.ServeMux, issuer string) {
	h := &registrationHandler{reg: r, issuer: strings.TrimSuffix(issuer, "/")}
	mux.HandleFunc("POST "+PathRegister, h.register)
	mux.HandleFunc("GET "+PathRegister+"/{client_id}", h.read)
	mux.HandleFunc("PUT "+PathRegister+"/{client_id}", h.update)
	mux.HandleFunc("DELETE "+PathRegister+"/{client_id}", h.delete)
}

// Handler returns a handler serving only the routes of RegisterRoutes. Mount
// it on a parent ServeMux at both "/oauth2/register" and
// "/oauth2/register/" (paths are not stripped), or call RegisterRoutes on
// the parent mux instead.
func (r *ClientRegistry) Handler(issuer string) http.Handler {
	mux := http.NewServeMux()
	r.RegisterRoutes(mux, issuer)
	return mux
}

type registrationHandler struct {
	reg    *ClientRegistry
	issuer string
}

// register serves RFC 7591 §3: POST /oauth2/register.
func (h *registrationHandler) register(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	if err := h.reg.checkRegistrationToken(ctx, registrationBearer(req)); err != nil {
		h.authError(ctx, w, err)
		return
	}
	body, ok := h.readJSONBody(w, req)
	if !ok {
		return
	}
	m, err := ParseMetadata(body)
	if err != nil {
		h.fail(ctx, w, err)
		return
	}
	reg, token, err := h.reg.create(ctx, m, true)
	if err != nil {
		h.fail(ctx, w, err)
		return
	}
	reg.RegistrationAccessToken = token
	reg.RegistrationClientURI = h.clientURI(reg.ClientID)
	writeRegistrationJSON(w, http.StatusCreated, reg)
}

// read serves RFC 7592 §2.1: GET /oauth2/register/{client_id}.
func (h *registrationHandler) read(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	token := registrationBearer(req)
	c, err := h.reg.authenticateClient(ctx, req.PathValue("client_id"), token)
	if err != nil {
		h.authError(ctx, w, err)
		return
	}
	reg, err := registeredFrom(c)
	if err != nil {
		h.fail(ctx, w, err)
		return
	}
	h.respondClient(w, http.StatusOK, reg, token)
}

// updateRequest is the body of an RFC 7592 §2.2 update: the full metadata
// plus the members the client must or must not send.
type updateRequest struct {
	Metadata
	ClientID                *string         `json:"client_id"`
	ClientSecret            *string         `json:"client_secret"`
	RegistrationAccessToken json.RawMessage `json:"registration_access_token"`
	RegistrationClientURI   json.RawMessage `json:"registration_client_uri"`
	ClientSecretExpiresAt   json.RawMessage `json:"client_secret_expires_at"`
	ClientIDIssuedAt        json.RawMessage `json:"client_id_issued_at"`
}

// update serves RFC 7592 §2.2: PUT /oauth2/register/{client_id}.
func (h *registrationHandler) update(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	id := req.PathValue("client_id")
	token := registrationBearer(req)
	if _, err := h.reg.authenticateClient(ctx, id, token); err != nil {
		h.authError(ctx, w, err)
		return
	}
	body, ok := h.readJSONBody(w, req)
	if !ok {
		return
	}
	var u updateRequest
	if err := decodeMetadataJSON(body, &u); err != nil {
		h.fail(ctx, w, err)
		return
	}
	for name, v := range map[string]json.RawMessage{
		"registration_access_token": u.RegistrationAccessToken,
		"registration_client_uri":   u.RegistrationClientURI,
		"client_secret_expires_at":  u.ClientSecretExpiresAt,
		"client_id_issued_at":       u.ClientIDIssuedAt,
	} {
		if v != nil {
			writeRegistrationError(w, http.StatusBadRequest, "invalid_request", "the update request must not include "+name)
			return
		}
	}
	if u.ClientID == nil || *u.ClientID != id {
		writeRegistrationError(w, http.StatusBadRequest, "invalid_request", "client_id must be present and match the client being updated")
		return
	}
	m, err := u.Metadata.Validate()
	if err != nil {
		h.fail(ctx, w, err)
		return
	}
	reg, err := h.reg.update(ctx, id, m, func(c storage.Client) error {
		// Re-check inside the transaction: the token may have changed.
		if len(c.RegistrationAccessTokenHash) == 0 ||
			h.reg.hasher.Compare(ctx, c.RegistrationAccessTokenHash, []byte(token)) != nil {
			return errRegistrationToken
		}
		if u.ClientSecret != nil &&
			(len(c.SecretHash) == 0 || h.reg.hasher.Compare(ctx, c.SecretHash, []byte(*u.ClientSecret)) != nil) {
			return errSecretDiffers
		}
		return nil
	})
	if err != nil {
		h.fail(ctx, w, err)
		return
	}
	h.respondClient(w, http.StatusOK, reg, token)
}

// errSecretDiffers is an update whose client_secret is not the current one.
var errSecretDiffers = errors.New("client_secret does not match the current secret")

// delete serves RFC 7592 §2.3: DELETE /oauth2/register/{client_id}.
func (h *registrationHandler) delete(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	id := req.PathValue("client_id")
	if _, err := h.reg.authenticateClient(ctx, id, registrationBearer(req)); err != nil {
		h.authError(ctx, w, err)
		return
	}
	if err := h.reg.Delete(ctx, id); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			h.authError(ctx, w, errRegistrationToken)
			return
		}
		h.fail(ctx, w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// respondClient writes an RFC 7592 §3 client information response. The
// registration access token is not rotated, so the one presented is
// returned.
func (h *registrationHandler) respondClient(w http.ResponseWriter, status int, reg Registered, token string) {
	reg.RegistrationAccessToken = token
	reg.RegistrationClientURI = h.clientURI(reg.ClientID)
	writeRegistrationJSON(w, status, reg)
}

func (h *registrationHandler) clientURI(id string) string {
	return h.issuer + PathRegister + "/" + url.PathEscape(id)
}

// readJSONBody enforces the JSON content type and the size limit, and
// answers the error itself when it returns false.
func (h *registrationHandler) readJSONBody(w http.ResponseWriter, req *http.Request) ([]byte, bool) {
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeRegistrationError(w, http.StatusUnsupportedMediaType, "invalid_request", "the request body must be application/json")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxRegistrationBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeRegistrationError(w, http.StatusBadRequest, "invalid_request", "the request body is larger than 64 KiB")
			return nil, false
		}
		writeRegistrationError(w, http.StatusBadRequest, "invalid_request", "the request body could not be read")
		return nil, false
	}
	return body, true
}

// authError answers a refused bearer token with 401 invalid_token (RFC 6750
// §3.1), or 500 when storage failed.
func (h *registrationHandler) authError(ctx context.Context, w http.ResponseWriter, err error) {
	if !errors.Is(err, errRegistrationToken) {
		h.fail(ctx, w, err)
		return
	}
	const desc = "the access token is missing, invalid or expired"
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
	writeRegistrationError(w, http.StatusUnauthorized, "invalid_token", desc)
}

// fail maps an error to its RFC 7591 / 7592 response.
func (h *registrationHandler) fail(ctx context.Context, w http.ResponseWriter, err error) {
	var me *MetadataError
	switch {
	case errors.As(err, &me):
		writeRegistrationError(w, http.StatusBadRequest, me.Code, me.Description)
	case errors.Is(err, errRegistrationToken), errors.Is(err, storage.ErrNotFound):
		h.authError(ctx, w, errRegistrationToken)
	case errors.Is(err, errSecretDiffers):
		writeRegistrationError(w, http.StatusBadRequest, "invalid_request", errSecretDiffers.Error())
	default:
		h.reg.logger.ErrorContext(ctx, "client registration failed", "error", err)
		writeRegistrationError(w, http.StatusInternalServerError, "server_error", "the registration could not be completed")
	}
}

// registrationBearer returns the token of an "Authorization: Bearer" header, or "".
func registrationBearer(req *http.Request) string {
	scheme, token, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func writeRegistrationJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeRegistrationError(w, http.StatusInternalServerError, "server_error", "the response could not be encoded")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeRegistrationError(w http.ResponseWriter, status int, code, description string) {
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, description})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

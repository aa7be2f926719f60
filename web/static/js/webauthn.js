// Passkey ceremonies for the Stepwise pages: sign-in (modal and autofill),
// step-up, enrolment and the account page. The page marks its ceremony area
// with id="webauthn" and data-mode; buttons carry data-action. The server
// keeps each ceremony's state; this script only moves the WebAuthn JSON
// between the server and navigator.credentials. Loaded as an external file
// because the pages' CSP forbids inline script.
(function () {
	"use strict";

	var root = document.getElementById("webauthn");
	if (!root) {
		return;
	}
	var mode = root.getAttribute("data-mode");
	var statusBox = root.querySelector("[data-status]");
	var supported = typeof window.PublicKeyCredential === "function" &&
		!!navigator.credentials && typeof navigator.credentials.get === "function";

	// --- base64url, for browsers without the WebAuthn JSON helpers ---

	function fromB64url(s) {
		var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
		while (b64.length % 4) {
			b64 += "=";
		}
		var bin = atob(b64);
		var out = new Uint8Array(bin.length);
		for (var i = 0; i < bin.length; i++) {
			out[i] = bin.charCodeAt(i);
		}
		return out.buffer;
	}

	function toB64url(buf) {
		var bytes = new Uint8Array(buf);
		var bin = "";
		for (var i = 0; i < bytes.length; i++) {
			bin += String.fromCharCode(bytes[i]);
		}
		return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
	}

	function withIDs(list) {
		return (list || []).map(function (c) {
			return Object.assign({}, c, { id: fromB64url(c.id) });
		});
	}

	function creationOptions(pk) {
		if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
			return PublicKeyCredential.parseCreationOptionsFromJSON(pk);
		}
		var o = Object.assign({}, pk);
		o.challenge = fromB64url(pk.challenge);
		o.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
		o.excludeCredentials = withIDs(pk.excludeCredentials);
		return o;
	}

	function requestOptions(pk) {
		if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
			return PublicKeyCredential.parseRequestOptionsFromJSON(pk);
		}
		var o = Object.assign({}, pk);
		o.challenge = fromB64url(pk.challenge);
		o.allowCredentials = withIDs(pk.allowCredentials);
		return o;
	}

	function credentialJSON(cred) {
		if (typeof cred.toJSON === "function") {
			try {
				return cred.toJSON();
			} catch (e) {
				// Fall through to the manual encoding.
			}
		}
		var r = cred.response;
		var out = {
			id: cred.id,
			rawId: toB64url(cred.rawId),
			type: cred.type,
			clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
			response: { clientDataJSON: toB64url(r.clientDataJSON) }
		};
		if (cred.authenticatorAttachment) {
			out.authenticatorAttachment = cred.authenticatorAttachment;
		}
		if (r.attestationObject) {
			out.response.attestationObject = toB64url(r.attestationObject);
			if (typeof r.getTransports === "function") {
				out.response.transports = r.getTransports();
			}
		} else {
			out.response.authenticatorData = toB64url(r.authenticatorData);
			out.response.signature = toB64url(r.signature);
			if (r.userHandle) {
				out.response.userHandle = toB64url(r.userHandle);
			}
		}
		return out;
	}

	// --- talking to the server ---

	function ServerError(body, status) {
		this.name = "ServerError";
		this.message = body.message || "Something went wrong. Please try again.";
		this.code = body.error || "";
		this.redirect = body.redirect || "";
		this.status = status;
	}

	// Redirected ends a ceremony whose begin call answered with a place to
	// go instead of options (the request was settled meanwhile).
	function Redirected() {
		this.name = "Redirected";
	}

	function publicKeyOf(res) {
		if (!res.options || !res.options.publicKey) {
			go(res.redirect);
			throw new Redirected();
		}
		return res.options.publicKey;
	}

	function post(path, body) {
		return fetch(path, {
			method: "POST",
			credentials: "same-origin",
			headers: { "Content-Type": "application/json", "Accept": "application/json" },
			body: JSON.stringify(body)
		}).then(function (res) {
			return res.json().catch(function () {
				return {};
			}).then(function (data) {
				if (!res.ok) {
					throw new ServerError(data, res.status);
				}
				return data;
			});
		});
	}

	// --- messages ---

	function say(text, isError) {
		if (!statusBox) {
			return;
		}
		statusBox.textContent = "";
		if (!text) {
			return;
		}
		var p = document.createElement("p");
		p.textContent = text;
		if (isError) {
			p.className = "error";
			p.setAttribute("role", "alert");
			p.setAttribute("data-test", "error");
		} else {
			p.className = "notice";
		}
		statusBox.appendChild(p);
	}

	// explain turns a failure into words for the person at the keyboard.
	function explain(err, ceremony) {
		if (err instanceof ServerError) {
			return err.message;
		}
		switch (err && err.name) {
		case "NotAllowedError":
			if (ceremony === "register") {
				return "No passkey was created: the request was cancelled or timed out. Try again when you're ready.";
			}
			if (ceremony === "stepup") {
				return "No passkey was used: you cancelled, it timed out, or none of your passkeys is on this device. Try again, use a device that has your passkey, or cancel.";
			}
			return "No passkey was used: you cancelled, it timed out, or this device has no passkey for this site. Try again, or sign in with your password.";
		case "InvalidStateError":
			return "This device already has a passkey for your account, so there is nothing to add. You can sign in with it.";
		case "SecurityError":
			return "Passkeys can't be used at this address. Open the page at its usual address and try again.";
		case "NotSupportedError":
			return "This browser or device can't create or use the kind of passkey needed here. Try another browser or device.";
		case "TypeError":
			return "Could not reach the server. Check your connection and try again.";
		}
		return "Something went wrong with the passkey. Please try again.";
	}

	function data(name) {
		return root.getAttribute("data-" + name) || "";
	}

	function go(url) {
		if (url && url.charAt(0) === "/" && url.charAt(1) !== "/") {
			window.location.assign(url);
		}
	}

	function busy(button, on) {
		if (!button) {
			return;
		}
		button.disabled = on;
		button.setAttribute("aria-busy", on ? "true" : "false");
	}

	// signalUnknown tells the browser to forget a passkey the server no
	// longer knows (deleted from the account), where supported.
	function signalUnknown(err, cred) {
		if (err.code === "unknown_credential" && cred && typeof PublicKeyCredential.signalUnknownCredential === "function") {
			PublicKeyCredential.signalUnknownCredential({ rpId: location.hostname, credentialId: cred.id }).catch(function () {});
		}
	}

	// --- conditional mediation (passkeys in the username autofill) ---

	var conditional = null; // {controller, done}

	function startConditional() {
		if (mode !== "login" || !root.hasAttribute("data-conditional") ||
			typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") {
			return;
		}
		PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
			if (!ok || conditional) {
				return;
			}
			var controller = new AbortController();
			var used = null;
			var run = post("/webauthn/login/begin", { conditional: true, req: data("req"), "return": data("return") })
				.then(function (res) {
					return navigator.credentials.get({
						publicKey: requestOptions(publicKeyOf(res)),
						mediation: "conditional",
						signal: controller.signal
					});
				})
				.then(function (cred) {
					used = cred;
					say("Signing you in…", false);
					return post("/webauthn/login/finish", { credential: credentialJSON(cred), req: data("req"), "return": data("return") });
				})
				.then(function (res) {
					go(res.redirect);
				}, function (err) {
					if (controller.signal.aborted || err instanceof Redirected || (err && err.name === "AbortError")) {
						return;
					}
					if (err instanceof ServerError) {
						signalUnknown(err, used);
						say(err.message, true);
						conditional = null;
						startConditional();
					}
					// Other failures of an autofill request are the
					// browser's own business (the user ignored it).
				});
			conditional = { controller: controller, done: run };
		});
	}

	// stopConditional aborts the autofill request and waits until the
	// browser has let go of it, since a second request would be refused.
	function stopConditional() {
		if (!conditional) {
			return Promise.resolve();
		}
		var c = conditional;
		conditional = null;
		c.controller.abort();
		return c.done.catch(function () {});
	}

	// --- the ceremonies ---

	function login(button) {
		var cred = null;
		return stopConditional()
			.then(function () {
				return post("/webauthn/login/begin", { req: data("req"), "return": data("return") });
			})
			.then(function (res) {
				return navigator.credentials.get({ publicKey: requestOptions(publicKeyOf(res)) });
			})
			.then(function (c) {
				cred = c;
				say("Signing you in…", false);
				return post("/webauthn/login/finish", { credential: credentialJSON(c), req: data("req"), "return": data("return") });
			})
			.then(function (res) {
				go(res.redirect);
			}, function (err) {
				if (err instanceof ServerError) {
					signalUnknown(err, cred);
				}
				fail(err, "login", button);
				startConditional();
			});
	}

	function stepUp(button, purpose) {
		var body = purpose ? { purpose: purpose } : { req: data("req") };
		return post("/webauthn/stepup/begin", body)
			.then(function (res) {
				return navigator.credentials.get({ publicKey: requestOptions(publicKeyOf(res)) });
			})
			.then(function (c) {
				say("Checking…", false);
				return post("/webauthn/stepup/finish", Object.assign({ credential: credentialJSON(c) }, body));
			})
			.then(function (res) {
				go(res.redirect);
			}, function (err) {
				fail(err, "stepup", button);
			});
	}

	function register(button) {
		var token = data("token");
		var nickInput = document.getElementById("nickname");
		var nickname = nickInput ? nickInput.value.trim() : "";
		return post("/webauthn/register/begin", { token: token })
			.then(function (res) {
				return navigator.credentials.create({ publicKey: creationOptions(publicKeyOf(res)) });
			})
			.then(function (c) {
				say("Saving your passkey…", false);
				return post("/webauthn/register/finish", { credential: credentialJSON(c), token: token, nickname: nickname });
			})
			.then(function (res) {
				if (mode === "enroll") {
					enrolled(res);
					return;
				}
				go(res.redirect);
			}, function (err) {
				fail(err, "register", button);
			});
	}

	// enrolled replaces the enrolment form with the confirmation.
	function enrolled(res) {
		root.textContent = "";
		var h1 = document.querySelector("h1");
		if (h1) {
			h1.textContent = "All set";
		}
		var box = document.createElement("div");
		box.className = "notice success";
		box.setAttribute("role", "status");
		box.setAttribute("data-test", "passkey-enrolled");
		var p = document.createElement("p");
		p.textContent = res.message || "Your passkey is ready.";
		box.appendChild(p);
		root.appendChild(box);
		var a = document.createElement("a");
		a.className = "button";
		a.href = res.redirect || "/login";
		a.textContent = "Sign in with your passkey";
		root.appendChild(a);
		var hint = document.querySelector(".hint");
		if (hint) {
			hint.hidden = true;
		}
		a.focus();
	}

	function fail(err, ceremony, button) {
		busy(button, false);
		if (err instanceof ServerError && err.redirect && (err.code === "signed_out" || err.code === "request_expired")) {
			say(err.message, true);
			window.setTimeout(function () {
				go(err.redirect);
			}, 2500);
			return;
		}
		if (err instanceof Redirected) {
			return;
		}
		say(explain(err, ceremony), true);
		if (button) {
			button.focus();
		}
	}

	// --- wiring ---

	if (!supported) {
		if (mode !== "login") {
			say("This browser does not support passkeys. Try an up-to-date browser on a device with a fingerprint reader, face unlock, screen lock or security key.", true);
		}
		return;
	}

	var actions = {
		login: login,
		stepup: function (b) {
			return stepUp(b, "");
		},
		reauth: function (b) {
			return stepUp(b, "account");
		},
		register: register
	};
	Array.prototype.forEach.call(root.querySelectorAll("[data-action]"), function (button) {
		var run = actions[button.getAttribute("data-action")];
		if (!run) {
			return;
		}
		button.hidden = false;
		button.addEventListener("click", function () {
			if (button.disabled) {
				return;
			}
			busy(button, true);
			say("", false);
			run(button).then(function () {
				// Success navigates away; keep the button disabled until then.
			});
		});
	});
	startConditional();
})();

// Account pages: first-run setup (from the link `docent serve` prints), sign-in, sign-up,
// email confirmation, password reset, and accepting an invitation.

import * as api from "../api.js";
import { field, h, replace, status } from "../dom.js";
import { errorBox } from "../format.js";

/** Drops a token from the address bar (and so from history) once it has been read. */
function forgetToken(path) {
  history.replaceState(null, "", `#${path}`);
}

function afterSignin(go) {
  const next = sessionStorage.getItem("docent-after-signin");
  sessionStorage.removeItem("docent-after-signin");
  if (next && next.startsWith("#/") && !next.startsWith("#/signin")) location.hash = next;
  else go("/collections");
}

/** A centred card with a heading, a form and a place for errors. */
function card(main, title, intro, form, footer) {
  const errors = h("div", { class: "errors" });
  main.classList.add("narrow");
  replace(
    main,
    h("div", { class: "card auth" }, h("h1", {}, title), intro ? h("p", { class: "intro" }, intro) : null, errors, form, footer),
  );
  return errors;
}

/** Wires a form: `submit` runs `fn`, errors show in `errors`, the button is busy meanwhile. */
function onSubmit(form, errors, fn) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    errors.replaceChildren();
    try {
      await fn();
    } catch (err) {
      errors.append(errorBox(err));
    } finally {
      button.disabled = false;
    }
  });
}

const password = (autocomplete) =>
  h("input", { type: "password", name: "password", required: true, minlength: 10, autocomplete });
const email = () => h("input", { type: "email", name: "email", required: true, autocomplete: "email" });

export async function setupView({ main, query, go }) {
  const token = query.get("token") || "";
  forgetToken("/setup");
  const tokenInput = h("input", { name: "token", required: true, value: token, autocomplete: "off", spellcheck: "false" });
  const emailInput = email();
  const pw = password("new-password");
  const ws = h("input", { name: "workspace", value: "My workspace", autocomplete: "organization" });
  const form = h(
    "form",
    {},
    field("Setup token", tokenInput, "Filled in from the link docent serve printed."),
    field("Your email", emailInput),
    field("Password", pw, "At least 10 characters."),
    field("Workspace name", ws),
    h("button", { type: "submit", class: "primary" }, "Create account"),
  );
  const errors = card(
    main,
    "Welcome to docent",
    "Create the first account. It owns the workspace and can invite others.",
    form,
    h("p", { class: "muted" }, "Already set up? ", h("a", { href: "#/signin" }, "Sign in")),
  );
  onSubmit(form, errors, async () => {
    await api.setup(tokenInput.value.trim(), emailInput.value.trim(), pw.value, ws.value.trim());
    go("/collections");
  });
  (token ? emailInput : tokenInput).focus();
}

export async function signinView({ main, go }) {
  if (api.current() || (await api.refresh())) {
    afterSignin(go);
    return;
  }
  const emailInput = email();
  const pw = password("current-password");
  const form = h(
    "form",
    {},
    field("Email", emailInput),
    field("Password", pw),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  const errors = card(
    main,
    "Sign in to docent",
    null,
    form,
    h(
      "p",
      { class: "muted" },
      h("a", { href: "#/forgot-password" }, "Forgot your password?"),
      " · ",
      h("a", { href: "#/signup" }, "Create an account"),
      h("br"),
      "First run? Open the setup link that ",
      h("code", {}, "docent serve"),
      " printed.",
    ),
  );
  onSubmit(form, errors, async () => {
    await api.signin(emailInput.value.trim(), pw.value);
    afterSignin(go);
  });
}

export async function signupView({ main, query, go }) {
  const invite = query.get("invite") || "";
  if (invite) forgetToken("/signup");
  const emailInput = email();
  const pw = password("new-password");
  const ws = h("input", { name: "workspace", autocomplete: "organization" });
  const form = h(
    "form",
    {},
    field("Email", emailInput),
    field("Password", pw, "At least 10 characters."),
    invite ? null : field("Workspace name", ws, "Optional: a workspace of your own is created."),
    h("button", { type: "submit", class: "primary" }, "Create account"),
  );
  const errors = card(main, invite ? "Create an account to join" : "Create an account", null, form, h("p", { class: "muted" }, h("a", { href: "#/signin" }, "Sign in instead")));
  onSubmit(form, errors, async () => {
    const outcome = await api.signup(emailInput.value.trim(), pw.value, ws.value.trim(), invite);
    if (outcome === "verify") {
      replace(form, h("p", { role: "status" }, `We sent a confirmation link to ${emailInput.value.trim()}. Open it, then sign in.`));
    } else {
      go("/collections");
    }
  });
}

export async function verifyView({ main, query }) {
  const token = query.get("token") || "";
  forgetToken("/verify-email");
  const note = status("Confirming your email address…");
  const errors = card(main, "Confirm your email", null, note, h("p", {}, h("a", { href: "#/signin" }, "Sign in")));
  try {
    await api.publicPost("/api/v1/auth/confirm", { token });
    note.textContent = "Your email address is confirmed. You can sign in now.";
  } catch (e) {
    note.textContent = "";
    errors.append(errorBox(e));
  }
}

export async function forgotView({ main }) {
  const emailInput = email();
  const form = h("form", {}, field("Email", emailInput), h("button", { type: "submit", class: "primary" }, "Send reset link"));
  const errors = card(main, "Reset your password", "We mail you a link to choose a new password.", form, h("p", {}, h("a", { href: "#/signin" }, "Back to sign in")));
  onSubmit(form, errors, async () => {
    await api.publicPost("/api/v1/auth/password/reset", { email: emailInput.value.trim() });
    replace(form, h("p", { role: "status" }, "If that address has an account, a reset link is on its way."));
  });
}

export async function resetView({ main, query }) {
  const token = query.get("token") || "";
  forgetToken("/reset-password");
  const pw = password("new-password");
  const form = h("form", {}, field("New password", pw, "At least 10 characters."), h("button", { type: "submit", class: "primary" }, "Set password"));
  const errors = card(main, "Choose a new password", null, form, null);
  onSubmit(form, errors, async () => {
    await api.publicPost("/api/v1/auth/password/reset/confirm", { token, password: pw.value });
    replace(form, h("p", { role: "status" }, "Your password is changed. ", h("a", { href: "#/signin" }, "Sign in")));
  });
}

export async function acceptInviteView({ main, query, go }) {
  const token = query.get("token") || "";
  forgetToken("/accept-invite");
  if (!(api.current() || (await api.refresh()))) {
    // Not signed in: a new account joins with the token; an existing one signs in first and
    // comes back here.
    card(
      main,
      "You are invited",
      "Create an account to join the workspace, or sign in if you have one.",
      h(
        "div",
        { class: "actions" },
        h("a", { class: "button primary", href: `#/signup?invite=${encodeURIComponent(token)}` }, "Create an account"),
        h("a", { class: "button", href: "#/signin", id: "invite-signin" }, "Sign in"),
      ),
      null,
    );
    main.querySelector("#invite-signin").addEventListener("click", () => {
      sessionStorage.setItem("docent-after-signin", `#/accept-invite?token=${encodeURIComponent(token)}`);
    });
    return;
  }
  const button = h("button", { type: "submit", class: "primary" }, "Join the workspace");
  const form = h("form", {}, button);
  const errors = card(main, "You are invited", "Join the workspace you were invited to with this account.", form, null);
  onSubmit(form, errors, async () => {
    const m = await api.call("POST", "/api/v1/auth/invites/accept", { json: { token } });
    await api.switchTenant(m.tenant_id);
    go("/collections");
  });
}

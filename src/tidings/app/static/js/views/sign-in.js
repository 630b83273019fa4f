// The sign-in form (POST /api/session sets the session and CSRF cookies).

import { h } from "../dom.js";
import { api, ApiError } from "../api.js";

export function signInView(onSignedIn, { title = "Sign in to tidings" } = {}) {
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, "data-testid": "signin-email" });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true, "data-testid": "signin-password" });
  const error = h("p", { class: "form-error", role: "alert", hidden: true, "data-testid": "signin-error" });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-block", "data-testid": "signin-submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin-card", "data-testid": "signin-form" },
    h("h1", {}, title),
    h("label", { class: "field" }, h("span", { class: "field-label" }, "Email"), email),
    h("label", { class: "field" }, h("span", { class: "field-label" }, "Password"), password),
    error,
    submit,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const body = await api.signIn(email.value.trim(), password.value);
      await onSignedIn(body.user);
    } catch (err) {
      error.hidden = false;
      if (err instanceof ApiError && err.status === 401) error.textContent = "Wrong email or password.";
      else if (err instanceof ApiError && err.status === 429) error.textContent = "Too many attempts; wait a few minutes and try again.";
      else if (err instanceof ApiError) error.textContent = err.message;
      else error.textContent = "The app cannot be reached. Check your connection and try again.";
    } finally {
      submit.disabled = false;
    }
  });
  return h("div", { class: "signin-page" }, form);
}

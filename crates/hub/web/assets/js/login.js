// The login page: posts {"user","password"} as JSON to /api/login and, once the hub has set
// its session cookie (HttpOnly: this script never sees it), reloads the page, which the hub
// then answers with the dashboard. Never stores the password anywhere.

const form = document.querySelector("#login-form");
const error = document.querySelector("#login-error");
const submit = document.querySelector("#login-submit");

function showError(text) {
  error.textContent = text;
  error.hidden = false;
}

async function logIn(user, password) {
  let res;
  try {
    res = await fetch("/api/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user, password }),
      credentials: "same-origin",
    });
  } catch {
    return showError("Cannot reach the hub.");
  }
  if (res.ok) {
    // Same URL, now with a session: the hub serves the dashboard.
    location.reload();
    return;
  }
  let why = "";
  try {
    why = (await res.json()).error ?? "";
  } catch {
    // Not JSON: use the status below.
  }
  if (res.status === 429) {
    const wait = res.headers.get("retry-after");
    showError(`Too many failed attempts from this address${wait ? `: try again in ${wait} s` : ""}.`);
  } else if (res.status === 401) {
    showError("Wrong user name or password.");
  } else {
    showError(why || `Login failed (${res.status}).`);
  }
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  error.hidden = true;
  submit.disabled = true;
  try {
    await logIn(form.elements.user.value, form.elements.password.value);
  } finally {
    submit.disabled = false;
  }
});

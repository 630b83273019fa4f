// The app's HTTP API for the pages: JSON in and out, the CSRF header on writes,
// errors as ApiError (the server answered) or NetworkError (it did not).
// Polling and push are tidings-client.js's; this module only carries user actions.

const CSRF_COOKIE = "tidings_csrf";
const CSRF_HEADER = "X-Tidings-CSRF";
/** Milliseconds before a request is given up as a network failure. */
export const TIMEOUT_MS = 10000;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.error) || "http_error";
    this.body = body || {};
  }
}

export class NetworkError extends Error {}

export function readCookie(name) {
  for (const part of document.cookie ? document.cookie.split(";") : []) {
    const [k, ...rest] = part.trim().split("=");
    if (k === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** One request; resolves to the JSON body (null for 204), rejects with ApiError or NetworkError. */
export async function request(method, path, { body, headers = {} } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (method !== "GET") {
    const csrf = readCookie(CSRF_COOKIE);
    if (csrf) h[CSRF_HEADER] = csrf;
    if (body !== undefined) h["Content-Type"] = "application/json";
  }
  return answer(
    fetch(path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    }),
  );
}

/** A response on its way: its JSON body (null for 204), or ApiError / NetworkError. */
export async function answer(pending) {
  let response;
  try {
    response = await pending;
  } catch (err) {
    throw new NetworkError(err && err.message ? err.message : "network error");
  }
  if (response.status === 204) return null;
  let json = null;
  try {
    json = await response.json();
  } catch (err) {
    json = null;
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

export const api = {
  me: () => request("GET", "/api/me"),
  signIn: (email, password) => request("POST", "/api/session", { body: { email, password } }),
  signOut: () => request("DELETE", "/api/session"),
  createProject: (name, key) =>
    request("POST", "/api/projects", { body: { name }, headers: key ? { "Idempotency-Key": key } : {} }),
  snapshot: (project) => request("GET", `/api/projects/${project}`),
  command: (project, command, { expectedVersion, key } = {}) =>
    request("POST", `/api/projects/${project}/commands`, {
      body: expectedVersion === undefined ? { command } : { command, expected_version: expectedVersion },
      headers: key ? { "Idempotency-Key": key } : {},
    }),
  flags: () => request("GET", "/api/admin/flags"),
  setFlags: (changes) => request("PUT", "/api/admin/flags", { body: changes }),
  stats: () => request("GET", "/api/admin/stats"),
};

/**
 * The requests index.html's inline script made as the page was parsed, {me, project,
 * snapshot}: promises of {status, ok, json()} (as from fetch, the body already parsed),
 * once; null when it did not run or they were taken.
 */
export function takeEarly() {
  const early = globalThis.tidingsEarly || null;
  globalThis.tidingsEarly = null;
  return early;
}

/** A fresh Idempotency-Key: retries of one user action share it, so it applies once. */
export function idempotencyKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// The REST API from the browser: the token lives in sessionStorage (this tab only)
// and goes out as `Authorization: Bearer`; errors carry the API's own message.

const KEY = "owncdn.token";
let unauthorized = () => {};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  get unavailable() {
    // 404: the endpoint does not exist on this control plane; 503: it has no store for it
    return this.status === 404 || this.status === 503;
  }
}

export const token = () => sessionStorage.getItem(KEY);
export const setToken = (text) => sessionStorage.setItem(KEY, text);
export const clearToken = () => sessionStorage.removeItem(KEY);
export const onUnauthorized = (fn) => { unauthorized = fn; };

export async function api(path, { method = "GET", body, signal, quiet401 = false } = {}) {
  const headers = { Authorization: `Bearer ${token() || ""}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "the control plane cannot be reached");
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (response.ok) return data;
  const problem = (data && data.error) || {};
  const detail = typeof (data && data.detail) === "string" ? data.detail : null;
  const error = new ApiError(response.status, problem.code || `http_${response.status}`,
    problem.message || detail || `${method} ${path}: HTTP ${response.status}`);
  if (response.status === 401 && !quiet401) unauthorized(error);
  throw error;
}

export const enc = encodeURIComponent;

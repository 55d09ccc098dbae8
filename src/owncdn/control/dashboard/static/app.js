// The dashboard shell: sign-in with an API token, the page router (#/name), and the
// live loop that refreshes the shown page every few seconds (`?refresh=S` sets S),
// and at once when the control plane's event stream says something changed.

import { api, clearToken, onUnauthorized, setToken, token } from "./api.js";
import { liveEvents } from "./live.js";
import { PAGES } from "./pages.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(500, 1000 * Number(params.get("refresh") || 5));
const state = { env: sessionStorage.getItem("owncdn.env") || "production", who: null, page: null, timer: null, busy: false, again: false, live: null, streaming: false };

function startLive() {
  if (state.live) state.live();
  state.live = liveEvents(state.env, () => { clearTimeout(state.timer); tick(); }, (up) => {
    state.streaming = up;
    $("live").dataset.stream = up ? "up" : "down";
  });
}

function showLogin(message) {
  if (state.live) { state.live(); state.live = null; }
  stopPage();
  $("shell").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("token").focus();
}

async function signIn(text) {
  setToken(text);
  try {
    state.who = await api("/v1/dashboard/whoami", { quiet401: true });
  } catch (err) {
    clearToken();
    const why = err.status === 401 ? `Token refused: ${err.message}` : `Cannot sign in: ${err.message}`;
    showLogin(why);
    return false;
  }
  $("login").hidden = true;
  $("shell").hidden = false;
  $("who").textContent = `${state.who.name} (${state.who.scopes.join(", ")})`;
  $("env").value = state.env;
  startLive();
  route();
  return true;
}

function stopPage() {
  clearTimeout(state.timer);
  if (state.page && state.page.stop) state.page.stop();
  state.page = null;
}

function route() {
  if ($("shell").hidden) return;
  const name = (location.hash.replace(/^#\/?/, "") || "overview").split("?")[0];
  const page = PAGES[name] ? name : "overview";
  stopPage();
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const main = $("main");
  main.replaceChildren();
  main.dataset.page = page;
  const ctx = { env: state.env, who: state.who, can: (scope) => state.who.scopes.includes("admin") || state.who.scopes.includes(scope) };
  state.page = PAGES[page](main, ctx);
  tick();
}

async function tick() {
  const page = state.page;
  if (!page) return;
  if (state.busy) { state.again = true; return; } // a tick during a refresh: one more refresh after it
  state.busy = true;
  try {
    await page.refresh();
    const how = state.streaming ? "live" : `every ${REFRESH_MS / 1000} s`;
    $("live").textContent = `updated ${new Date().toISOString().slice(11, 19)}Z, ${how}`;
  } finally {
    state.busy = false;
  }
  const again = state.again;
  state.again = false;
  if (state.page !== page) { if (again) tick(); return; } // the page changed meanwhile: refresh the new one
  clearTimeout(state.timer);
  if (again) tick();
  else state.timer = setTimeout(tick, REFRESH_MS);
}

onUnauthorized((err) => {
  clearToken();
  showLogin(`Signed out: ${err.message}`);
});

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("token").value.trim());
});
$("logout").addEventListener("click", () => { clearToken(); $("token").value = ""; showLogin(""); });
$("env").addEventListener("change", () => {
  state.env = $("env").value.trim() || "production";
  sessionStorage.setItem("owncdn.env", state.env);
  startLive();
  route();
});
window.addEventListener("hashchange", () => { route(); $("main").focus(); });

if (token()) signIn(token()); else showLogin("");

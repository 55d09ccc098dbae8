// The dashboard's pages. Each page builds its forms once and returns {refresh},
// which the shell calls every few seconds; a panel whose endpoint this control
// plane lacks (404) or cannot serve (503) says "not available" and the rest works.

import { ApiError, api, enc } from "./api.js";
import { lineChart, minuteSeries } from "./charts.js";
import { badge, bytes, h, num, pct, seconds, table, when } from "./dom.js";
import { worldMap } from "./worldmap.js";

function panel(main, title, id) {
  const body = h("div", { class: "body" });
  const el = h("section", { class: "panel", id, "aria-labelledby": `${id}-h` }, h("h2", { id: `${id}-h` }, title), body);
  main.append(el);
  return { el, body, set: (...nodes) => body.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined)) };
}

function problem(p, err) {
  if (err instanceof ApiError && err.unavailable) {
    p.set(h("p", { class: "unavailable" }, `Not available on this control plane: ${err.message}`));
    p.el.dataset.state = "unavailable";
  } else {
    p.set(h("p", { class: "error", role: "alert" }, err.message));
    p.el.dataset.state = "error";
  }
}

const FOCUS_KEYS = ["data-rollback", "data-diff", "data-activate"];

function focusKey(el) {
  // a selector for the focused control, to focus its new copy after a refresh
  if (el.id) return `#${CSS.escape(el.id)}`;
  const attr = FOCUS_KEYS.find((a) => el.hasAttribute(a));
  return attr ? `[${attr}="${CSS.escape(el.getAttribute(attr))}"]` : null;
}

async function load(p, build) {
  try {
    const nodes = await build();
    const key = p.el.contains(document.activeElement) ? focusKey(document.activeElement) : null;
    p.set(...[].concat(nodes));
    p.el.dataset.state = "ok";
    const again = key && p.el.querySelector(key);
    if (again) again.focus();
  } catch (err) {
    if (err.name !== "AbortError") problem(p, err);
  }
}

const optional = (promise) => promise.catch((err) => (err instanceof ApiError && err.status !== 401 ? null : Promise.reject(err)));
const heading = (main, text) => main.append(h("h1", {}, text));
const e = (ctx) => enc(ctx.env);

// -- Overview ---------------------------------------------------------------------

function tile(id, label, value, raw) {
  return h("div", { class: "tile", id, "data-value": raw ?? "" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

function configState(status) {
  const latest = status.latest_version;
  if (latest === null) return h("p", { class: "note" }, `Nothing deployed to ${status.env} yet.`);
  const nodes = status.nodes;
  const running = nodes.filter((n) => !n.drift);
  const all = running.length === nodes.length;
  const drifted = nodes.filter((n) => n.drift);
  return [
    h("p", { id: "config-version", "data-version": latest, "data-in-sync": String(all) },
      h("strong", {}, `v${latest}`), " ",
      badge(`${running.length} of ${nodes.length} nodes run it`, all ? "ok" : "warn")),
    drifted.length ? table([{ title: "Node" }, { title: "Runs" }, { title: "Status" }, { title: "Reason" }, { title: "Last contact" }],
      drifted.map((n) => [n.name, n.running_version ? `v${n.running_version}` : "nothing", n.status, n.reason || "–", seconds(n.seconds_since_contact)]),
      { id: "drift" }) : h("p", { class: "note" }, "No drift: every node runs the latest version."),
  ];
}

function glance(total) {
  const errors = total.status["4xx"] + total.status["5xx"];
  return h("div", { class: "tiles" },
    tile("tile-requests", "Requests", num(total.requests), total.requests),
    tile("tile-bandwidth", "Bandwidth served", bytes(total.bytes), total.bytes),
    tile("tile-hit-ratio", "Hit ratio", pct(total.hit_ratio), total.hit_ratio),
    tile("tile-offload", "Origin offload", pct(total.origin_offload), total.origin_offload),
    tile("tile-errors", "Error rate (4xx + 5xx)", total.requests ? pct(errors / total.requests) : "–", errors),
    tile("tile-origin", "Fetched from origins", bytes(total.origin_bytes), total.origin_bytes));
}

function edgeGlance(edges, why) {
  const loads = edges.map((x) => x.load).filter(Boolean);
  const max = (key) => (loads.length ? Math.max(...loads.map((l) => l[key] ?? 0)) : null);
  const mean = loads.length ? loads.reduce((a, l) => a + (l.load1 ?? 0), 0) / loads.length : null;
  const healthy = edges.filter((x) => x.healthy).length;
  const lag = max("loop_lag_seconds");
  return [h("p", { class: "note", id: "glance-fallback" }, `Traffic statistics are not available (${why.message}); the edges' own figures instead.`),
    h("div", { class: "tiles" },
      tile("tile-edges", "Edges healthy", `${healthy} of ${edges.length}`, healthy),
      tile("tile-load", "Mean load (1 min)", mean === null ? "–" : mean.toFixed(2), mean),
      tile("tile-steal", "Highest CPU steal", pct(max("cpu_steal_ratio")), max("cpu_steal_ratio")),
      tile("tile-lag", "Highest loop lag", lag === null ? "–" : `${(lag * 1000).toFixed(1)} ms`, lag))];
}

function trafficCharts(stats) {
  const series = (pick) => minuteSeries(stats.buckets, stats.from, stats.to, pick);
  const count = (key) => (b) => (b ? b[key] : 0);
  const ratio = (key) => (b) => (b ? b[key] : null);
  return h("div", { class: "charts" },
    lineChart({ id: "chart-requests", title: "Requests per minute", points: series(count("requests")), format: num }),
    lineChart({ id: "chart-bandwidth", title: "Bandwidth per minute", points: series(count("bytes")), format: bytes }),
    lineChart({ id: "chart-hit-ratio", title: "Hit ratio", points: series(ratio("hit_ratio")), format: pct, max: 1 }),
    lineChart({ id: "chart-offload", title: "Origin offload", points: series(ratio("origin_offload")), format: pct, max: 1 }),
    lineChart({ id: "chart-errors", title: "Errors per minute (4xx + 5xx)", format: num,
      points: series((b) => (b ? b.status["4xx"] + b.status["5xx"] : 0)) }));
}

function overview(main, ctx) {
  heading(main, "Overview");
  const config = panel(main, "Config version", "config-state");
  const tiles = panel(main, "Last hour", "glance");
  const charts = panel(main, "Traffic per minute", "traffic");
  const top = panel(main, "Top services, last hour", "top-services");
  const alerts = panel(main, "Recent alerts", "alerts");
  async function stats() {
    try {
      const data = await api("/v1/stats?since=1h&bucket=1m");
      await load(tiles, () => glance(data.total));
      await load(charts, () => trafficCharts(data));
    } catch (err) {
      problem(charts, err);
      if (!(err instanceof ApiError && err.unavailable)) { problem(tiles, err); return; }
      // no traffic statistics here: show what the edges report about themselves instead
      await load(tiles, async () => edgeGlance(await api(`/v1/health/edges?env=${e(ctx)}`), err));
    }
  }
  return {
    refresh: () => Promise.all([
      load(config, async () => configState(await api(`/v1/envs/${e(ctx)}/status`))),
      stats(),
      load(top, async () => {
        const data = await api("/v1/stats/top?by=service&since=1h&limit=10");
        if (!data.top.length) return h("p", { class: "note" }, "No requests in the last hour.");
        return table([{ title: "Service" }, { title: "Requests", num: true }, { title: "Bandwidth", num: true }],
          data.top.map((r) => [r.value ?? "(none)", num(r.requests), bytes(r.bytes)]));
      }),
      load(alerts, async () => alertTable(await api("/v1/alerts"))),
    ]),
  };
}

const ALERT_TONE = { critical: "bad", warning: "warn", resolved: "ok" };

function alertTable(list) {
  // What this control plane's monitor and the edges' reports raised (edges and origins down and back, error
  // rates, disks running low, releases an edge failed or cannot fetch, certificates), newest first.
  if (!list.length) return h("p", { class: "note" }, "No alerts since this control plane started.");
  return table([{ title: "Time" }, { title: "Severity" }, { title: "Alert" }, { title: "Message" }],
    list.slice(-20).reverse().map((a) => [when(a.time), badge(a.severity, ALERT_TONE[a.severity] || "idle"),
      h("code", {}, a.alert), a.message]), { id: "alerts-table" });
}

// -- Services and purges --------------------------------------------------------------

function coveredBy(certs, hostname) {
  const wild = hostname.includes(".") ? `*.${hostname.split(".").slice(1).join(".")}` : null;
  return (certs || []).find((c) => c.names.includes(hostname) || (wild && c.names.includes(wild)));
}

const CERT_TONE = { valid: "ok", pending: "idle", failing: "bad", expired: "bad" };

function purgeForm(ctx, result) {
  const kind = h("select", { id: "purge-kind", name: "kind" },
    ["url", "prefix", "tag", "all"].map((k) => h("option", { value: k }, k === "all" ? "everything" : k)));
  const value = h("input", { id: "purge-value", name: "value", size: 48, placeholder: "https://demo.cdn.test/ or /path", spellcheck: "false" });
  const service = h("select", { id: "purge-service", name: "service" }, h("option", { value: "" }, "every service"));
  const soft = h("input", { id: "purge-soft", type: "checkbox", name: "soft" });
  const button = h("button", { id: "purge-submit", type: "submit", disabled: !ctx.can("purge") }, "Purge");
  kind.addEventListener("change", () => { value.disabled = kind.value === "all"; });
  const form = h("form", { class: "inline", id: "purge-form" },
    h("label", {}, "What", kind), h("label", {}, "URL, prefix or tag", value), h("label", {}, "Service", service),
    h("label", { class: "check" }, soft, "soft (mark stale, keep for revalidation)"), button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { soft: soft.checked };
    body[kind.value] = kind.value === "all" ? true : value.value.trim();
    if (service.value) body.service = service.value;
    button.disabled = true;
    try {
      await followPurge(ctx, body, result);
    } finally {
      button.disabled = !ctx.can("purge");
    }
  });
  return { form, service };
}

function renderPurge(status, result) {
  const target = Object.entries(status.spec).filter(([k]) => k !== "soft" && k !== "service").map(([k, v]) => (k === "all" ? "everything" : `${k} ${v}`));
  const total = status.acked.length + status.pending.length;
  result.dataset.complete = String(status.complete);
  result.dataset.purge = status.id;
  result.replaceChildren(
    h("p", {}, h("strong", {}, `Purge #${status.id}`), `: ${target.join(", ")}${status.spec.soft ? " (soft)" : ""}`,
      status.spec.service ? `, service ${status.spec.service}` : ""),
    h("ul", { class: "acks", id: "purge-acks" },
      status.acked.map((a) => h("li", { "data-node": a.name, "data-state": "acked" }, badge("acked", "ok"), ` ${a.name} in ${a.ms.toFixed(1)} ms, ${a.removed} removed`)),
      status.pending.map((p) => h("li", { "data-node": p.name, "data-state": "pending" }, badge("waiting", "warn"), ` ${p.name}`))),
    h("p", { id: "purge-summary", role: "status" }, status.complete
      ? `Every edge acknowledged (${status.acked.length} of ${total}).`
      : `${status.acked.length} of ${total} edges acknowledged so far...`));
}

async function followPurge(ctx, body, result) {
  result.replaceChildren(h("p", { class: "note" }, "Sending the purge..."));
  let status;
  try {
    status = await api(`/v1/envs/${e(ctx)}/purges`, { method: "POST", body });
  } catch (err) {
    result.replaceChildren(h("p", { class: "error", role: "alert" }, `Purge refused: ${err.message}`));
    return;
  }
  renderPurge(status, result);
  for (let i = 0; i < 240 && !status.complete && result.isConnected; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    status = await api(`/v1/envs/${e(ctx)}/purges/${status.id}`);
    renderPurge(status, result);
  }
}

function services(main, ctx) {
  heading(main, "Services");
  const list = panel(main, "Services of the latest version", "services-list");
  const purge = panel(main, "Purge", "purge");
  const result = h("div", { id: "purge-result", "aria-live": "polite" });
  const { form, service } = purgeForm(ctx, result);
  purge.set(ctx.can("purge") ? null : h("p", { class: "note" }, "This token has no purge scope."), form, result);
  return {
    refresh: () => load(list, async () => {
      const [svc, certs, top] = await Promise.all([
        api(`/v1/envs/${e(ctx)}/services`), optional(api("/v1/certs")), optional(api("/v1/stats/top?by=service&since=1h&limit=1000"))]);
      const chosen = service.value;
      service.replaceChildren(h("option", { value: "" }, "every service"), svc.services.map((s) => h("option", { value: s.name, selected: s.name === chosen }, s.name)));
      if (!svc.services.length) return h("p", { class: "note" }, `No services in ${ctx.env} yet.`);
      const traffic = new Map(((top && top.top) || []).map((r) => [r.value, r]));
      const releases = await Promise.all(svc.services.map((s) => (s.origins.length ? null
        : optional(api(`/v1/services/${enc(s.name)}/releases?env=${e(ctx)}&limit=1`)))));
      const rows = svc.services.map((s, i) => {
        const cert = s.hostnames.map((n) => coveredBy(certs, n)).find(Boolean);
        const release = (releases[i] || []).find((r) => r.current);
        const t = traffic.get(s.name);
        return [
          h("strong", {}, s.name), s.hostnames.join(", "), h("code", {}, `${s.name}.${ctx.who.zone}`),
          s.origins.length ? s.origins.join(", ") : release ? `release ${release.number} (${release.files} files)` : "no release yet",
          certs === null ? h("span", { class: "unavailable" }, "not available") : cert
            ? [badge(cert.status, CERT_TONE[cert.status] || "idle"), ` until ${when(cert.not_after).slice(0, 10)}`] : badge("none", "idle"),
          num(t ? t.requests : 0), bytes(t ? t.bytes : 0),
        ];
      });
      return table([{ title: "Service" }, { title: "Hostnames" }, { title: "CNAME to" }, { title: "Origin or release" },
        { title: "Certificate" }, { title: "Requests (1 h)", num: true }, { title: "Bandwidth (1 h)", num: true }], rows, { id: "services-table" });
    }),
  };
}

// -- Edge locations -------------------------------------------------------------------

function locationState(edges) {
  if (!edges.length) return "empty";
  const up = edges.filter((x) => x.healthy).length;
  return up === edges.length ? "up" : up === 0 ? "down" : "degraded";
}

function routeBox(ctx, out) {
  const client = h("input", { id: "route-client", value: "80.130.1.1", size: 18, spellcheck: "false" });
  const name = h("input", { id: "route-name", size: 30, spellcheck: "false", placeholder: `demo.${ctx.who.zone}` });
  const ecs = h("input", { id: "route-ecs", size: 18, spellcheck: "false", placeholder: "203.0.113.0/24" });
  const form = h("form", { class: "inline", id: "route-form" },
    h("label", {}, "Client (resolver) address", client), h("label", {}, "Name asked", name),
    h("label", {}, "ECS subnet (optional)", ecs), h("button", { type: "submit", id: "route-submit" }, "Explain"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = `client=${enc(client.value.trim())}&name=${enc(name.value.trim() || name.placeholder)}&env=${e(ctx)}`
      + (ecs.value.trim() ? `&ecs=${enc(ecs.value.trim())}` : "");
    try {
      const data = await api(`/v1/route/explain?${query}`);
      out.replaceChildren(h("pre", { class: "out", id: "route-out" }, data.lines.join("\n")));
    } catch (err) {
      out.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
    }
  });
  return { form, name };
}

function edges(main, ctx) {
  heading(main, "Edge locations");
  const map = panel(main, "Locations", "map");
  const nodes = panel(main, "Nodes", "nodes");
  const route = panel(main, "Route explain: which location a visitor gets", "route");
  const out = h("div", { "aria-live": "polite" });
  const box = routeBox(ctx, out);
  route.set(box.form, out);
  return {
    refresh: async () => {
      let data;
      try {
        data = await Promise.all([api(`/v1/envs/${e(ctx)}/locations`), api(`/v1/health/edges?env=${e(ctx)}`),
          api(`/v1/envs/${e(ctx)}/status`), optional(api(`/v1/envs/${e(ctx)}/services`))]);
      } catch (err) {
        problem(map, err);
        problem(nodes, err);
        return;
      }
      const [locs, health, status, svc] = data;
      if (svc && svc.services.length) box.name.placeholder = `${svc.services[0].name}.${ctx.who.zone}`;
      const byId = new Map(health.map((x) => [x.id, x]));
      await load(map, () => {
        const sites = locs.locations.map((loc) => {
          const here = health.filter((x) => x.location === loc.name);
          const state = locationState(here);
          return { name: loc.name, lat: loc.lat, lon: loc.lon, state,
            title: `${loc.name}${loc.city ? ` (${loc.city})` : ""}: ${state}, ${here.filter((x) => x.healthy).length} of ${here.length} edges healthy` };
        });
        return [h("div", { class: "map" }, worldMap(sites)),
          h("div", { class: "legend" }, badge("all edges healthy", "ok"), badge("some down", "warn"), badge("all down", "bad"), badge("no edges", "idle")),
          table([{ title: "Location" }, { title: "City" }, { title: "Lat, lon" }, { title: "Health" }, { title: "Nodes" }],
            sites.map((x, i) => [x.name, locs.locations[i].city || "–", x.lat === null ? "–" : `${x.lat}, ${x.lon}`,
              badge(x.state, { up: "ok", degraded: "warn", down: "bad", empty: "idle" }[x.state]), locs.locations[i].nodes.join(", ") || "–"]),
            { id: "locations-table" })];
      });
      await load(nodes, () => table(
        [{ title: "Node" }, { title: "Kind" }, { title: "Location" }, { title: "Address" }, { title: "Health" }, { title: "Version" },
          { title: "Drift" }, { title: "Load (1 min)", num: true }, { title: "CPU steal", num: true }, { title: "Loop lag", num: true },
          { title: "Disk free", num: true }, { title: "Last contact" }],
        status.nodes.map((n) => {
          const x = byId.get(n.id);
          const load1 = x && x.load ? x.load.load1 : null;
          const steal = x && x.load ? x.load.cpu_steal_ratio : null;
          const lag = x && x.load ? x.load.loop_lag_seconds : null;
          return [n.name, n.kind, n.location, h("code", {}, n.address),
            x ? badge(x.healthy ? "healthy" : "down", x.healthy ? "ok" : "bad") : "–",
            n.running_version ? `v${n.running_version}` : "none",
            n.drift ? badge(n.status === "rejected" ? `rejected: ${n.reason}` : `drift (latest v${status.latest_version})`, "warn") : badge("in sync", "ok"),
            load1 === null || load1 === undefined ? "–" : load1.toFixed(2), steal === null || steal === undefined ? "–" : pct(steal),
            lag === null || lag === undefined ? "–" : `${(lag * 1000).toFixed(1)} ms`, diskFree(x), seconds(n.seconds_since_contact)];
        }), { id: "nodes-table" }));
    },
  };
}

function diskFree(x) {
  // The free space of an edge's state directory's disk, as its health answer said; below 5% as the monitor's alert.
  const disk = x && x.disk;
  if (!disk || !disk.total) return "–";
  const share = disk.free / disk.total;
  const text = `${bytes(disk.free)} (${pct(share)})`;
  return share < 0.05 ? h("span", { class: "bad", "data-disk-low": x.name }, `${text} low`) : text;
}

// -- Certificates -----------------------------------------------------------------------

const EVENT_TONE = { issued: "ok", renewed: "ok", uploaded: "idle", failed: "bad" };

function expiryTone(days) {
  // red when expired or within two weeks, amber within a month, green beyond
  if (days === null) return "idle";
  return days < 14 ? "bad" : days < 30 ? "warn" : "ok";
}

function historyTable(events) {
  if (!events.length) return h("p", { class: "note" }, "Nothing recorded yet.");
  return table([{ title: "When" }, { title: "Event" }, { title: "CA or error" }, { title: "Serial" }, { title: "Expires" }],
    events.map((ev) => [when(ev.at), badge(ev.kind, EVENT_TONE[ev.kind] || "idle"),
      ev.kind === "failed" ? h("span", { class: "bad" }, ev.error) : ev.issuer || "–",
      ev.serial ? h("code", {}, ev.serial) : "–", ev.not_after ? when(ev.not_after).slice(0, 10) : "–"]),
    { class: "history" });
}

function certificates(main) {
  heading(main, "Certificates");
  const list = panel(main, "Certificates", "certs");
  const open = new Set();      // certificate ids whose history is expanded
  const history = new Map();   // id -> events or an Error
  async function fetchHistory(id) {
    try {
      history.set(id, await api(`/v1/certs/${enc(id)}/history`));
    } catch (err) {
      if (err.name !== "AbortError") history.set(id, err);
    }
  }
  function historyBox(c) {
    const got = history.get(c.id);
    const fails = c.failures ? ` (${c.failures} failing)` : "";
    const body = got === undefined ? h("p", { class: "note" }, "Loading…")
      : got instanceof Error ? h("p", { class: "error" }, got.message) : historyTable(got);
    const box = h("details", { class: "history", "data-cert": c.id, open: open.has(c.id) },
      h("summary", { id: `history-${c.id}` }, `History of ${c.id}${fails}`), h("div", { class: "history-body" }, body));
    box.addEventListener("toggle", async () => {
      if (!box.open) { open.delete(c.id); return; }
      if (open.has(c.id)) return;
      open.add(c.id);
      await fetchHistory(c.id);
      const fresh = history.get(c.id);
      box.lastChild.replaceChildren(fresh instanceof Error ? h("p", { class: "error" }, fresh.message) : historyTable(fresh));
    });
    return box;
  }
  return {
    refresh: () => load(list, async () => {
      const certs = await api("/v1/certs");
      if (!certs.length) return h("p", { class: "note" }, "No certificates yet: add `acme:` to a service in cdn.yaml, or upload one (owncdn certs put).");
      await Promise.all([...open].filter((id) => certs.some((c) => c.id === id)).map(fetchHistory));
      const now = Date.now();
      const tbl = table([{ title: "Certificate" }, { title: "Names" }, { title: "Status" }, { title: "Issuer" }, { title: "Expires" },
        { title: "Renews" }, { title: "Failures" }, { title: "Edges with it" }],
      certs.map((c) => {
        const days = c.not_after ? Math.floor((Date.parse(c.not_after) - now) / 86400000) : null;
        const expiry = c.not_after
          ? h("span", { class: `expiry ${expiryTone(days)}`, "data-days": days }, `${when(c.not_after).slice(0, 10)} (${days} days)`) : "–";
        return [h("code", {}, c.id), c.names.join(", "), badge(c.status, CERT_TONE[c.status] || "idle"), c.issuer || "–",
          expiry, c.renew_at ? when(c.renew_at).slice(0, 16) : "–",
          c.failures ? h("span", { class: "bad" }, `${c.failures}: ${c.last_error}`) : "0",
          `${c.edges.filter((x) => x.current).length} of ${c.edges.length} current`];
      }), { id: "certs-table" });
      certs.forEach((c, i) => { if (c.failures || c.status === "expired") tbl.tBodies[0].rows[i].classList.add("failing"); });
      return [tbl, h("h3", {}, "Renewal history"), ...certs.map(historyBox)];
    }),
  };
}

// -- Rollouts and releases ----------------------------------------------------------------

function diffView(diff) {
  const lines = diff.text.split("\n").map((line) => h("span", { class: { "+": "add", "-": "remove", "~": "change" }[line[0]] || null }, `${line}\n`));
  return [h("p", {}, diff.previous ? `v${diff.number} against v${diff.previous}:` : `v${diff.number}, the first version:`),
    h("pre", { class: "diff", id: "diff-text", "data-version": diff.number }, lines)];
}

function rollouts(main, ctx) {
  heading(main, "Rollouts and releases");
  const versions = panel(main, "Config versions", "versions");
  const diff = panel(main, "Diff", "diff");
  const releases = panel(main, "Pushed releases", "releases");
  const message = h("p", { id: "rollback-result", role: "status" });
  let selected = null, shown = null, confirming = null, latest = null;
  const refresh = async () => {
    await load(versions, async () => {
      const [list, status] = await Promise.all([api(`/v1/envs/${e(ctx)}/versions?limit=25`), api(`/v1/envs/${e(ctx)}/status`)]);
      if (!list.length) return h("p", { class: "note" }, `Nothing deployed to ${ctx.env} yet.`);
      latest = list[0].number;
      const running = (n) => status.nodes.filter((x) => x.running_version === n).length;
      const actions = (v) => {
        const show = h("button", { type: "button", class: "quiet", "data-diff": v.number, onclick: () => { selected = v.number; refresh(); } }, "Diff");
        if (v.number === latest) return [show, " ", badge("latest", "ok")];
        if (confirming === v.number) {
          return h("span", { class: "confirm" }, `Roll ${ctx.env} back to v${v.number}?`,
            h("button", { type: "button", class: "danger", id: "rollback-confirm", onclick: () => rollback(v.number) }, "Confirm rollback"),
            h("button", { type: "button", class: "quiet", onclick: () => { confirming = null; refresh(); } }, "Cancel"));
        }
        return [show, " ", h("button", { type: "button", class: "quiet", "data-rollback": v.number, disabled: !ctx.can("deploy"),
          onclick: () => { confirming = v.number; refresh(); } }, `Roll back to v${v.number}`)];
      };
      return [message, table([{ title: "Version" }, { title: "Created" }, { title: "Applied by" }, { title: "Comment" }, { title: "Services" },
        { title: "Nodes running it", num: true }, { title: "" }],
      list.map((v) => [h("strong", {}, `v${v.number}`), when(v.created_at), v.author, v.comment || "–", v.services.join(", ") || "–",
        `${running(v.number)} of ${status.nodes.length}`, actions(v)]), { id: "versions-table", "data-latest": latest })];
    });
    const want = selected ?? latest;
    if (want !== null && want !== shown) {
      await load(diff, async () => diffView(await api(`/v1/envs/${e(ctx)}/versions/${want}/diff`)));
      shown = want;
    }
    await load(releases, () => releaseTable(ctx, refresh));
  };
  async function rollback(number) {
    confirming = null;
    try {
      const v = await api(`/v1/envs/${e(ctx)}/rollback`, { method: "POST", body: { to: number } });
      message.textContent = `Stored v${v.number}: ${v.comment}. Every node of ${ctx.env} receives it now.`;
      message.className = "";
      selected = v.number;
    } catch (err) {
      message.textContent = `Rollback refused: ${err.message}`;
      message.className = "error";
    }
    await refresh();
  }
  return { refresh };
}

async function releaseTable(ctx, refresh) {
  const svc = await api(`/v1/envs/${e(ctx)}/services`);
  const pushed = svc.services.filter((s) => s.mode === "push"); // pull services have no releases to list
  const lists = await Promise.all(pushed.map(async (s) => {
    const list = await api(`/v1/services/${enc(s.name)}/releases?env=${e(ctx)}&limit=10`);
    const current = list.find((r) => r.current); // its status names the edges that failed it or are retrying
    const status = current && await optional(api(`/v1/services/${enc(s.name)}/releases/${current.number}/status?env=${e(ctx)}`));
    return list.map((r) => ({ service: s.name, ...r, status: r.current ? status : null }));
  }));
  const rows = lists.flat();
  if (!rows.length) return h("p", { class: "note" }, "No pushed releases (owncdn push ./public --service NAME).");
  const activate = async (r) => {
    await api(`/v1/services/${enc(r.service)}/releases/${r.number}/activate?env=${e(ctx)}`, { method: "POST" });
    await refresh();
  };
  return table([{ title: "Service" }, { title: "Release" }, { title: "Files", num: true }, { title: "Size", num: true }, { title: "By" },
    { title: "Comment" }, { title: "Created" }, { title: "Serving" }, { title: "" }],
  rows.map((r) => [r.service, `#${r.number}`, num(r.files), bytes(r.bytes), r.author, r.comment || "", when(r.created), servingCell(r),
    r.current ? badge("current", "ok") : r.pruned ? h("span", { class: "note", "data-pruned": `${r.service}/${r.number}`,
      title: "Blob GC dropped its manifest (it was outside the retention): it can no longer be activated" }, "pruned") : h("button", { type: "button", class: "quiet", "data-activate": `${r.service}/${r.number}`, disabled: !ctx.can("deploy"), onclick: () => activate(r),
      title: r.retained === false ? "Not kept by blob GC: refused if its files were already deleted" : "" },
    r.retained === false ? `Activate #${r.number} (not kept)` : `Activate #${r.number}`)]),
  { id: "releases-table" });
}

function servingCell(r) {
  // The edges serving a release; for the current one also those that failed it or are retrying, with why.
  const names = r.nodes.map((n) => n.name).join(", ") || "–";
  if (!r.status) return names;
  const trouble = [
    ...r.status.failed.map((n) => h("div", { class: "bad", "data-trouble": n.name }, `${n.name} failed: ${n.reason}`)),
    ...r.status.pending.filter((n) => n.reason).map((n) =>
      h("div", { class: "warn", "data-trouble": n.name }, `${n.name} retrying: ${n.reason}`)),
  ];
  return trouble.length ? h("div", {}, names, ...trouble) : names;
}

// -- Logs -----------------------------------------------------------------------------------

const LOG_COLUMNS = [{ title: "Time" }, { title: "Edge" }, { title: "Service" }, { title: "Status" }, { title: "Cache" },
  { title: "Request" }, { title: "Bytes", num: true }, { title: "TTFB", num: true }];

function logs(main, ctx) {
  heading(main, "Logs");
  const tail = panel(main, "Live tail (newest first)", "tail");
  const query = panel(main, "Query (SQL over the view `logs`, admin)", "query");
  const sql = h("textarea", { id: "query-sql", rows: 4, spellcheck: "false" },
    "SELECT service, count(*) AS requests, sum(bytes) AS bytes, avg(ttfb_ms) AS ttfb_ms\nFROM logs GROUP BY service ORDER BY requests DESC");
  const out = h("div", { id: "query-out", "aria-live": "polite" });
  const form = h("form", { id: "query-form" }, h("label", { for: "query-sql" }, "SQL"), sql,
    h("p", {}, h("button", { type: "submit", id: "query-run", disabled: !ctx.can("admin") }, "Run")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const data = await api("/v1/logs/query", { method: "POST", body: { sql: sql.value, limit: 500 } });
      out.replaceChildren(h("p", { class: "note" }, `${data.rows.length} rows`),
        table(data.columns.map((c) => ({ title: typeof c === "string" ? c : c.name })), data.rows.map((r) => r.map((v) => (v === null ? "–" : String(v)))), { id: "query-table" }));
    } catch (err) {
      out.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
    }
  });
  query.set(ctx.can("admin") ? null : h("p", { class: "note" }, "Queries need an admin token."), form, out);
  let next = 0, lines = [];
  const checks = h("input", { type: "checkbox", id: "tail-checks" });
  const controls = h("p", {}, h("label", {}, checks, " show the control plane's health checks"));
  return {
    refresh: () => load(tail, async () => {
      const data = await api(`/v1/logs/tail?after=${next}&limit=200`);
      next = data.next;
      lines = [...data.lines.reverse(), ...lines].slice(0, 500);
      const shown = lines.filter((l) => checks.checked || !(l.path || "").startsWith("/.well-known/owncdn/")).slice(0, 200);
      if (!shown.length) return [controls, h("p", { class: "note" }, "No log lines yet.")];
      return [controls, table(LOG_COLUMNS, shown.map((l) => [when(l.time), l.edge, l.service ?? "–", String(l.status), l.cache ?? "–",
        `${l.method ?? ""} ${l.host ?? ""}${l.path ?? ""}`, num(l.bytes), l.ttfb_ms === null || l.ttfb_ms === undefined ? "–" : `${l.ttfb_ms.toFixed(1)} ms`]),
      { id: "tail-table", class: "logs" })];
    }),
  };
}

// -- Usage ----------------------------------------------------------------------------------

function usage(main, ctx) {
  heading(main, "Usage per service");
  const months = panel(main, "By month", "usage-months");
  const days = panel(main, "By day, last 31 days", "usage-days");
  let loaded = 0;
  return {
    refresh: async () => {
      if (Date.now() - loaded < 30000) return; // daily figures: no need to ask every few seconds
      let per;
      try {
        const svc = await api(`/v1/envs/${e(ctx)}/services`);
        per = await Promise.all(svc.services.map((s) => api(`/v1/stats?service=${enc(s.name)}&since=400d&bucket=1d`)
          .then((st) => st.buckets.map((b) => ({ service: s.name, day: b.bucket.slice(0, 10), ...b })))));
      } catch (err) {
        problem(months, err);
        problem(days, err);
        return;
      }
      loaded = Date.now();
      const rows = per.flat();
      const byMonth = new Map();
      for (const r of rows) {
        const key = `${r.day.slice(0, 7)} ${r.service}`;
        const m = byMonth.get(key) || { month: r.day.slice(0, 7), service: r.service, requests: 0, bytes: 0, origin_bytes: 0 };
        m.requests += r.requests; m.bytes += r.bytes; m.origin_bytes += r.origin_bytes;
        byMonth.set(key, m);
      }
      const cols = (first) => [{ title: first }, { title: "Service" }, { title: "Requests", num: true }, { title: "Bandwidth", num: true }, { title: "From origins", num: true }];
      const order = (a, b) => (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : a[1] < b[1] ? -1 : 1);
      const empty = h("p", { class: "note" }, "No traffic recorded yet.");
      await load(months, () => (byMonth.size ? table(cols("Month"), [...byMonth.values()].map((m) => [m.month, m.service, num(m.requests), bytes(m.bytes), bytes(m.origin_bytes)]).sort(order), { id: "usage-month-table" }) : empty));
      const since = new Date(Date.now() - 31 * 86400000).toISOString().slice(0, 10);
      await load(days, () => (rows.length ? table(cols("Day"), rows.filter((r) => r.day >= since).map((r) => [r.day, r.service, num(r.requests), bytes(r.bytes), bytes(r.origin_bytes)]).sort(order), { id: "usage-day-table" }) : empty.cloneNode(true)));
    },
  };
}

export const PAGES = { overview, services, edges, certificates, rollouts, logs, usage };

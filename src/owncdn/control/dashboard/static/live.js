// Live updates: read `GET /v1/dashboard/events` (server-sent events) with fetch and a
// stream reader, so the token goes in the Authorization header (EventSource cannot
// send one). Every `changed` tick calls `onTick`; the shell's 5 s polling stays as
// the fallback, and a dropped stream reconnects after a pause that grows to 30 s.

import { token } from "./api.js";

export function liveEvents(env, onTick, onState) {
  let controller = null, stopped = false, pause = 1000, timer = null;
  async function connect() {
    controller = new AbortController();
    try {
      const response = await fetch(`/v1/dashboard/events?env=${encodeURIComponent(env)}`, {
        headers: { Authorization: `Bearer ${token() || ""}`, Accept: "text/event-stream" }, signal: controller.signal });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      onState(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (/^event: changed$/m.test(block)) { pause = 1000; onTick(); }
        }
      }
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    onState(false);
    if (!stopped) { timer = setTimeout(connect, pause); pause = Math.min(30000, pause * 2); }
  }
  connect();
  return () => { stopped = true; clearTimeout(timer); if (controller) controller.abort(); };
}

// Fleet dashboard: polls GET /api/v1/agents, /api/v1/status and /api/v1/deployments every 2 s and renders the
// tables. No framework, no build step.
"use strict";
(function () {
  const KEY = "ferry.token";
  const $ = (id) => document.getElementById(id);
  let token = null;
  let agents = [];
  let estate = [];
  let deployments = [];
  let promotions = [];
  let timer = null;

  const fromHash = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    localStorage.setItem(KEY, decodeURIComponent(fromHash[1]));
    history.replaceState(null, "", location.pathname);
  }
  token = localStorage.getItem(KEY);

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function until(iso) {
    if (!iso) return { text: "—", warn: false };
    const h = (Date.parse(iso) - Date.now()) / 3600000;
    if (h < 0) return { text: "expired", warn: true };
    return { text: h < 1 ? Math.round(h * 60) + " min" : h.toFixed(1) + " h", warn: h < 2 };
  }
  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function render() {
    const q = $("filter").value.trim().toLowerCase();
    const rows = agents.filter((a) => !q || JSON.stringify([a.name, a.id, a.environment, a.labels, a.facts.hostname]).toLowerCase().includes(q));
    const body = $("agents");
    body.replaceChildren();
    for (const a of rows) {
      const tr = document.createElement("tr");
      const st = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "badge " + a.status;
      badge.textContent = a.status + (a.status === "online" && !a.connected ? " (reconnecting)" : "");
      st.appendChild(badge);
      tr.appendChild(st);
      const name = cell(a.name);
      name.title = a.id;
      tr.appendChild(name);
      tr.appendChild(cell(a.environment));
      tr.appendChild(cell([a.facts.hostname, a.facts.os && a.facts.os + "/" + a.facts.arch].filter(Boolean).join(" · ")));
      tr.appendChild(cell(a.facts.agentVersion || "—"));
      tr.appendChild(cell((a.facts.drivers || []).join(", ") || "—"));
      tr.appendChild(cell(ago(a.lastHeartbeatAt)));
      const skew = a.clockSkewMs;
      tr.appendChild(cell(skew === null ? "—" : skew + " ms", skew !== null && Math.abs(skew) > 2000 ? "warn" : ""));
      const exp = until(a.certificate.notAfter);
      tr.appendChild(cell(exp.text, exp.warn && a.status !== "revoked" ? "warn" : ""));
      body.appendChild(tr);
    }
    $("empty").hidden = agents.length > 0;
    const c = { online: 0, offline: 0, revoked: 0 };
    for (const a of agents) c[a.status]++;
    $("summary").replaceChildren(
      ...[["online", c.online], ["offline", c.offline], ["revoked", c.revoked], ["total", agents.length]].map(([k, v]) => {
        const s = document.createElement("span");
        const b = document.createElement("b");
        b.textContent = String(v);
        s.append(b, " " + k);
        return s;
      }),
    );
  }
  const short = (digest) => String(digest || "").replace(/^sha256:/, "").slice(0, 12);
  function renderEstate() {
    const body = $("estate");
    body.replaceChildren();
    for (const t of estate) {
      const tr = document.createElement("tr");
      tr.appendChild(cell(t.environment));
      const name = cell(t.target);
      name.title = t.targetId + (t.agentId ? " · agent " + t.agentId : "");
      tr.appendChild(name);
      tr.appendChild(cell(t.deployed ? t.deployed.release : "—"));
      tr.appendChild(cell(t.deployed ? t.deployed.images.map((i) => i.component + "@" + short(i.digest)).join(", ") : "—"));
      const sync = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "badge sync-" + t.sync;
      badge.textContent = t.sync;
      sync.appendChild(badge);
      tr.appendChild(sync);
      tr.appendChild(cell(t.activeTask ? t.activeTask.state + " · " + t.activeTask.deploymentId : ""));
      const drift = cell(t.drift.join("; "), t.drift.length ? "warn" : "");
      drift.style.whiteSpace = "normal";
      tr.appendChild(drift);
      body.appendChild(tr);
    }
    $("estate-empty").hidden = estate.length > 0;
    const prom = $("promotions");
    prom.replaceChildren();
    for (const p of promotions) {
      const tr = document.createElement("tr");
      tr.appendChild(cell(p.id));
      tr.appendChild(cell(p.release.name + "@" + p.release.version));
      tr.appendChild(cell(p.environment));
      const st = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "badge prm-" + p.state;
      badge.textContent = p.state.replace("_", " ");
      st.appendChild(badge);
      tr.appendChild(st);
      const gates = document.createElement("td");
      gates.style.whiteSpace = "normal";
      for (const g of p.gates) {
        const line = document.createElement("div");
        line.className = "gate gate-" + g.state;
        line.textContent = g.state.toUpperCase() + " " + g.name + ": " + g.reason + (g.state !== "passed" && g.remedy ? " → " + g.remedy : "");
        gates.appendChild(line);
      }
      if (p.gates.length === 0) gates.textContent = p.reason || "no gates";
      tr.appendChild(gates);
      tr.appendChild(cell(ago(p.requestedAt)));
      tr.appendChild(cell(p.requestedBy));
      prom.appendChild(tr);
    }
    const list = $("deployments");
    list.replaceChildren();
    for (const d of deployments) {
      const tr = document.createElement("tr");
      tr.appendChild(cell(d.id));
      tr.appendChild(cell(d.action));
      tr.appendChild(cell(d.release ? d.release.name + "@" + d.release.version : "previous releases"));
      tr.appendChild(cell(d.environment));
      const st = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "badge dep-" + d.state;
      badge.textContent = d.state;
      st.appendChild(badge);
      tr.appendChild(st);
      tr.appendChild(cell(d.tasks.map((t) => t.target.name + " " + t.state).join(", ")));
      tr.appendChild(cell(ago(d.createdAt)));
      tr.appendChild(cell(d.requestedBy));
      list.appendChild(tr);
    }
  }
  async function getJson(path) {
    const res = await fetch(path, { headers: { authorization: "Bearer " + token } });
    if (res.status === 401 || res.status === 403) {
      const body = await res.json().catch(() => ({}));
      const err = new Error(body.error ? body.error.message : "the token was refused");
      err.auth = true;
      throw err;
    }
    if (!res.ok) throw new Error("HTTP " + res.status + " from " + path);
    return res.json();
  }
  async function refresh() {
    try {
      const [a, s, d, p] = await Promise.all([
        getJson("/api/v1/agents"),
        getJson("/api/v1/status"),
        getJson("/api/v1/deployments?limit=10"),
        getJson("/api/v1/promotions?limit=20"),
      ]);
      agents = a.agents;
      promotions = p.promotions;
      estate = s.targets;
      deployments = d.deployments;
      renderEstate();
      $("fetch-error").textContent = "";
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      render();
    } catch (e) {
      if (e.auth) {
        logout(e.message);
        return;
      }
      $("fetch-error").textContent = "Cannot reach the control plane: " + e.message;
    }
  }
  function show() {
    $("login").hidden = !!token;
    $("fleet").hidden = !token;
    clearInterval(timer);
    if (token) {
      void refresh();
      timer = setInterval(refresh, 2000);
    }
  }
  function logout(reason) {
    localStorage.removeItem(KEY);
    token = null;
    $("login-error").textContent = reason || "";
    show();
  }
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    localStorage.setItem(KEY, token);
    show();
  });
  $("logout").addEventListener("click", () => logout(""));
  $("filter").addEventListener("input", render);
  show();
})();

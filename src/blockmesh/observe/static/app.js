// The blockmesh dashboard: renders the daemon's snapshots, which arrive as server-sent events.
// Every value from the daemon goes into the page as text (textContent), never as markup:
// peer ids, addresses and pin names come from other machines.
"use strict";

const $ = (id) => document.getElementById(id);

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function count(n) {
  return n === null || n === undefined ? "–" : n.toLocaleString("en");
}

function setText(id, text) { $(id).textContent = text; }

function short(id) { return id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : id; }

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fillRows(tbody, items, render) {
  tbody.replaceChildren();
  for (const item of items) render(tbody.insertRow(), item);
}

function drawBandwidth(samples) {
  const canvas = $("bandwidth");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const peak = Math.max(1024, ...samples.map((s) => Math.max(s.sent, s.received)));
  ctx.fillStyle = "#7b8794";
  ctx.font = "11px sans-serif";
  ctx.fillText(bytes(peak) + "/s", 4, 12);
  if (samples.length < 2) return;
  const t0 = samples[0].t, span = Math.max(samples[samples.length - 1].t - t0, 1);
  const styles = getComputedStyle(document.documentElement);
  for (const [key, colour] of [["sent", "--sent"], ["received", "--received"]]) {
    ctx.strokeStyle = styles.getPropertyValue(colour).trim();
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    samples.forEach((s, i) => {
      const x = ((s.t - t0) / span) * (width - 2) + 1;
      const y = height - 2 - (s[key] / peak) * (height - 18);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

function render(snap) {
  setText("node-id", snap.node.id);
  const bs = snap.bitswap;
  setText("blocks-received", count(bs.blocks_received));
  setText("bytes-received", bytes(bs.bytes_received));
  setText("blocks-sent", count(bs.blocks_sent));
  setText("bytes-sent", bytes(bs.bytes_sent));
  setText("dup-blocks", count(bs.dup_blocks_received));
  setText("sessions", count(bs.sessions));
  setText("queue", count(bs.queued_tasks) + " tasks, " + bytes(bs.outstanding_bytes) +
          " in flight");
  setText("wantlist-size", count(bs.wantlist_size));

  const st = snap.store;
  setText("store-blocks", count(st.blocks));
  setText("store-bytes", bytes(st.bytes));
  setText("store-ops", [st.ops.put, st.ops.get, st.ops.has].map(count).join(" / "));
  setText("pin-count", count(st.pin_count));
  const pins = $("pins");
  pins.replaceChildren(...st.pins.slice(0, 20).map((p) => {
    const li = document.createElement("li");
    li.textContent = p.cid + " (" + p.kind + ")";
    return li;
  }));

  setText("peer-count", "(" + snap.peers.length + ")");
  fillRows($("peers").tBodies[0], snap.peers, (row, p) => {
    row.dataset.peer = p.id;
    cell(row, short(p.id), "mono peer-id").title = p.id;
    cell(row, p.address, "mono small");
    cell(row, p.group);
    cell(row, p.latency_ms === null ? "–" : p.latency_ms.toFixed(1) + " ms", "num");
    const l = p.ledger;
    cell(row, l ? bytes(l.bytes_sent) : "–", "num");
    cell(row, l ? bytes(l.bytes_received) : "–", "num");
    cell(row, l ? count(l.wants) : "–", "num");
    cell(row, l && l.debt_ratio !== null ? l.debt_ratio.toFixed(2) : "–", "num");
  });

  const wants = $("wantlists");
  const lines = ["ours: " + (bs.wantlist.join(", ") || "(empty)")];
  for (const [peer, cids] of Object.entries(bs.peer_wants)) {
    lines.push(short(peer) + ": " + (cids.join(", ") || "(empty)"));
  }
  wants.replaceChildren(...lines.map((text) => {
    const div = document.createElement("div");
    div.textContent = text;
    return div;
  }));

  const samples = snap.bandwidth;
  if (samples.length) {
    const last = samples[samples.length - 1];
    setText("rates", "now: ↑ " + bytes(last.sent) + "/s  ↓ " + bytes(last.received) + "/s");
  }
  drawBandwidth(samples);
  renderCluster(snap.cluster);
}

function renderCluster(c) {
  $("cluster").hidden = !c;
  if (!c) return;
  setText("cluster-id", c.id);
  setText("cluster-view", c.view === null ? "–" : c.view + " / " + c.primary);
  setText("cluster-height", count(c.height));
  setText("cluster-checkpoint", count(c.stable_checkpoint));
  fillRows($("members").tBodies[0], c.members, (row, m) => {
    cell(row, m.node + (m.self ? " (this)" : ""));
    cell(row, short(m.peer_id || ""), "mono").title = m.peer_id || "";
    cell(row, m.connected ? "yes" : "no");
    cell(row, m.down ? "down" : "up", m.down ? "down" : "");
  });
  setText("cluster-pin-count", "(" + c.pin_count + ")");
  fillRows($("cluster-pins").tBodies[0], c.pins, (row, p) => {
    cell(row, p.cid, "mono small");
    cell(row, p.name);
    const td = row.insertCell();
    for (const m of p.members) {
      const span = document.createElement("span");
      span.className = m.status;
      span.textContent = m.node + ": " + m.status + " ";
      td.append(span);
    }
  });
}

function connect() {
  const status = $("status");
  const events = new EventSource("/events");
  events.addEventListener("snapshot", (e) => {
    status.textContent = "live";
    status.className = "status live";
    render(JSON.parse(e.data));
  });
  events.onerror = () => {
    status.textContent = "disconnected, retrying…";
    status.className = "status down";
  };
}

connect();

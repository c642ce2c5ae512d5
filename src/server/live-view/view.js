// The live view's drawing: plain DOM and SVG, no framework. The state comes
// from /events (server-sent events) as the JSON of src/host/state.ts plus
// the last calls and warnings; every u64 is a hex string, drawn with BigInt.

const token = new URLSearchParams(location.search).get('token') ?? '';
const root = document.getElementById('root');
const statusLine = document.getElementById('status');
const SVG = 'http://www.w3.org/2000/svg';
const U64_MAX = (1n << 64n) - 1n;
const WIDTH = 1000;
const ROW = 18;
const LABEL = 130;

/** Per IOVA map (by key): the window [lo, hi] being shown; kept across updates. */
const views = new Map();

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

const big = (h) => BigInt(h);
const hex = (v) => `0x${v.toString(16)}`;

/** The window that shows every range of `rows` with a margin, or the whole space. */
function fit(rows) {
  let lo = U64_MAX;
  let hi = 0n;
  for (const row of rows) {
    for (const r of row.ranges) {
      if (row.fit === false) continue;
      if (big(r.start) < lo) lo = big(r.start);
      if (big(r.last) > hi) hi = big(r.last);
    }
  }
  if (lo > hi) return [0n, U64_MAX];
  const pad = (hi - lo) / 8n + 0x1000n;
  return [lo > pad ? lo - pad : 0n, hi + pad > U64_MAX ? U64_MAX : hi + pad];
}

/**
 * An IOVA map: one row per entry of `rows` ({label, color, ranges, fit}),
 * ranges as rectangles on a shared axis; wheel zooms around the pointer,
 * dragging pans, the buttons fit the mapped ranges or show all 2^64.
 */
function iovaMap(key, rows) {
  let view = views.get(key) ?? fit(rows);
  views.set(key, view);
  const height = rows.length * ROW + 28;
  const box = el('div');
  const fitButton = el('button', { type: 'button' }, 'fit');
  const allButton = el('button', { type: 'button' }, 'all 2^64');
  const map = svg('svg', { class: 'map', viewBox: `0 0 ${WIDTH} ${height}`, 'data-key': key });
  const draw = () => {
    map.replaceChildren();
    const [lo, hi] = view;
    const span = hi - lo + 1n;
    const scale = WIDTH - LABEL - 10;
    const x = (v) => {
      if (v <= lo) return LABEL;
      if (v >= hi) return LABEL + scale;
      return LABEL + Number(((v - lo) * 1000000n) / span) * (scale / 1000000);
    };
    rows.forEach((row, i) => {
      const y = i * ROW + 4;
      const text = svg('text', { x: 4, y: y + 12, 'font-size': 11, fill: '#5a6478' });
      text.textContent = row.label;
      map.append(
        text,
        svg('line', { x1: LABEL, x2: LABEL + scale, y1: y + 8, y2: y + 8, stroke: '#e3e7ee' }),
      );
      for (const r of row.ranges) {
        const s = big(r.start);
        const l = big(r.last);
        if (l < lo || s > hi) continue;
        const x0 = x(s);
        const w = Math.max(2, x(l) - x0);
        const rect = svg('rect', { x: x0, y, width: w, height: ROW - 4, fill: row.color, rx: 2 });
        const title = svg('title');
        title.textContent = `${row.label}: [${r.start}, ${r.last}]${r.note ? ` ${r.note}` : ''}`;
        rect.append(title);
        map.append(rect);
      }
    });
    const axisY = rows.length * ROW + 8;
    for (let t = 0; t <= 4; t++) {
      const v = lo + ((hi - lo) * BigInt(t)) / 4n;
      const tx = LABEL + (scale * t) / 4;
      const label = svg('text', {
        x: tx,
        y: axisY + 14,
        'font-size': 10,
        fill: '#7a8396',
        'text-anchor': t === 0 ? 'start' : t === 4 ? 'end' : 'middle',
      });
      label.textContent = hex(v);
      map.append(
        svg('line', { x1: tx, x2: tx, y1: axisY, y2: axisY + 4, stroke: '#7a8396' }),
        label,
      );
    }
  };
  const set = (v) => {
    view = v;
    views.set(key, v);
    draw();
  };
  fitButton.onclick = () => set(fit(rows));
  allButton.onclick = () => set([0n, U64_MAX]);
  map.addEventListener(
    'wheel',
    (e) => {
      e.preventDefault();
      const [lo, hi] = view;
      const r = map.getBoundingClientRect();
      const at = Math.min(
        1,
        Math.max(
          0,
          ((e.clientX - r.left) / r.width) * (WIDTH / (WIDTH - LABEL - 10)) -
            LABEL / (WIDTH - LABEL - 10),
        ),
      );
      const span = hi - lo;
      const next = e.deltaY < 0 ? span / 2n : span * 2n;
      const pivot = lo + (span * BigInt(Math.round(at * 1000))) / 1000n;
      let nlo = pivot - (next * BigInt(Math.round(at * 1000))) / 1000n;
      if (nlo < 0n) nlo = 0n;
      let nhi = nlo + (next > 0xfffn ? next : 0xfffn);
      if (nhi > U64_MAX) nhi = U64_MAX;
      set([nlo, nhi]);
    },
    { passive: false },
  );
  let drag;
  map.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, view };
  });
  map.addEventListener('pointerup', () => {
    drag = undefined;
  });
  map.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const [lo, hi] = drag.view;
    const r = map.getBoundingClientRect();
    const frac = BigInt(Math.round(((drag.x - e.clientX) / r.width) * 1000));
    let shift = ((hi - lo) * frac) / 1000n;
    if (lo + shift < 0n) shift = -lo;
    if (hi + shift > U64_MAX) shift = U64_MAX - hi;
    set([lo + shift, hi + shift]);
  });
  draw();
  box.append(el('div', {}, fitButton, allButton), map);
  return box;
}

function table(head, rows) {
  const t = el('table');
  t.append(el('tr', {}, ...head.map((h) => el('th', {}, h))));
  for (const r of rows) t.append(el('tr', {}, ...r.map((c) => el('td', {}, c))));
  return t;
}

function bar(used, limit) {
  if (limit === null)
    return el('span', { class: 'muted' }, `${used} pages (no limit: CAP_IPC_LOCK)`);
  const share = Number(used) / Math.max(1, Number(limit));
  const b = el(
    'span',
    { class: share >= 0.9 ? 'bar hot' : 'bar' },
    el('span', { style: `width:${Math.min(100, share * 100)}%` }),
  );
  return el('span', {}, b, ` ${used} / ${limit} pages`);
}

function render(s) {
  const out = [];
  out.push(el('h2', {}, 'Processes'));
  out.push(
    table(
      ['pid', 'uid', 'fds', 'locked (VmLck) vs RLIMIT_MEMLOCK', 'pinned (VmPin)'],
      s.processes.map((p) => [
        String(p.pid),
        String(p.uid),
        el('code', {}, p.fds.map((f) => `${f.fd}<${f.kind}>`).join(' ')),
        bar(p.lockedPages, p.limitPages),
        `${p.pinnedPages} pages`,
      ]),
    ),
  );
  out.push(
    el('h3', {}, 'Locked pages per user'),
    table(
      ['uid', 'locked_vm'],
      s.users.map((u) => [String(u.uid), `${u.lockedPages} pages`]),
    ),
  );
  s.contexts.forEach((c, ci) => {
    out.push(
      el(
        'h2',
        {},
        `iommufd context ${ci + 1} (fds ${c.fds.join(', ')}; accounting per ${c.accountMode}${c.compatIoas ? `; VFIO compat IOAS ${c.compatIoas}` : ''})`,
      ),
    );
    for (const ioas of c.ioas) {
      out.push(
        el('h3', {}, `IOAS ${ioas.id}: ${ioas.areas.length} areas, alignment ${ioas.alignment}`),
      );
      const rows = [
        {
          label: 'areas',
          color: '#3b6fd8',
          ranges: ioas.areas.map((a) => ({ ...a, note: `${a.prot} ${a.pinnedPages} pinned` })),
        },
        { label: 'usable (holes)', color: '#cfe8d4', ranges: ioas.holes, fit: false },
        { label: 'reserved', color: '#9aa3b5', ranges: ioas.reserved, fit: false },
        { label: 'allowed', color: '#4fa35f', ranges: ioas.allowed },
      ];
      for (const h of c.hwpts.filter((x) => x.ioas === ioas.id)) {
        rows.push({
          label: `hwpt ${h.id}${h.auto ? ' (auto)' : ''}`,
          color: '#e0953a',
          ranges: h.apertures,
          fit: false,
        });
      }
      out.push(iovaMap(`c${ci}-ioas${ioas.id}`, rows));
    }
    out.push(
      el('h3', {}, 'HWPTs and devices'),
      table(
        ['object', 'on', 'apertures', 'devices attached'],
        [
          ...c.hwpts.map((h) => [
            `${h.type} ${h.id}`,
            h.ioas ? `IOAS ${h.ioas}` : `parent ${h.parent}`,
            el(
              'code',
              {},
              h.apertures.map((a) => `[${a.start}, ${a.last}] pgsizes ${a.pgsizes}`).join(' '),
            ),
            h.devices.join(', '),
          ]),
          ...c.devices.map((d) => [
            `device ${d.id}`,
            `group ${d.group}`,
            el('code', {}, d.name),
            d.hwpt ? `→ hwpt ${d.hwpt}` : 'not attached',
          ]),
        ],
      ),
    );
  });
  const withDomain = s.groups.filter((g) => g.domain);
  out.push(el('h2', {}, 'IOMMU groups'));
  if (withDomain.length > 0) {
    out.push(
      iovaMap(
        'groups',
        withDomain.map((g) => ({
          label: `group ${g.id} windows`,
          color: '#e0953a',
          ranges: g.domain.apertures,
        })),
      ),
    );
  }
  out.push(
    table(
      ['group', 'devices', 'DMA owner', 'domain apertures (SPAPR: its windows)'],
      s.groups.map((g) => [
        String(g.id),
        el('code', {}, g.devices.join(' ')),
        g.dmaOwner ? 'claimed' : '—',
        g.domain
          ? el('code', {}, g.domain.apertures.map((a) => `[${a.start}, ${a.last}]`).join(' '))
          : 'blocked / none',
      ]),
    ),
  );
  out.push(el('h2', {}, 'DMA faults'));
  out.push(
    s.faults.length
      ? table(
          ['device', 'iova', 'access'],
          s.faults.map((f) => [f.device, f.iova, f.access]),
        )
      : el('p', { class: 'muted' }, 'none'),
  );
  out.push(el('h2', {}, 'Warnings'));
  out.push(
    s.warnings.length
      ? el(
          'ul',
          { class: 'calls' },
          ...s.warnings.map((w) =>
            el(
              'li',
              { class: 'warn' },
              `[pid ${w.pid}] ${w.id}: ${w.message}\n   caused by: ${w.cause}`,
            ),
          ),
        )
      : el('p', { class: 'muted' }, 'none'),
  );
  out.push(el('h2', {}, `Last calls (${s.calls.length})`));
  out.push(
    el(
      'ul',
      { class: 'calls' },
      ...s.calls.map((line) => {
        const at = line.lastIndexOf(' <');
        const failed = / = -1 /.test(line) && at > 0;
        return el(
          'li',
          {},
          failed ? line.slice(0, at) : line,
          failed ? el('span', { class: 'why' }, line.slice(at)) : '',
        );
      }),
    ),
  );
  root.replaceChildren(...out);
}

const events = new EventSource(`events?token=${encodeURIComponent(token)}`);
events.onmessage = (e) => {
  const s = JSON.parse(e.data);
  statusLine.textContent = `updated ${new Date().toLocaleTimeString()}`;
  render(s);
};
events.onerror = () => {
  statusLine.textContent = 'disconnected (the program has exited?)';
};

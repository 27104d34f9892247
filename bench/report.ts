// The bench's table: one row per figure, one column per contestant, chargegate's ratios to
// bare Hapi + joi and to the peer, and issue 16's target where there is one.

type R = Record<string, any>;

const num = (x: unknown, d = 0) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');
const ratio = (a: unknown, b: unknown) =>
  typeof a === 'number' && typeof b === 'number' && b > 0 ? (a / b).toFixed(2) : '-';
/** "p50/p99/max" of a median row; keys `${k}_p50` etc., or p50/p99/max when k is ''. */
const triple = (m: R | undefined, k: string) => {
  const key = (q: string) => (k ? `${k}_${q}` : q);
  return m ? `${num(m[key('p50')], 1)}/${num(m[key('p99')], 1)}/${num(m[key('max')])}` : '-';
};

/**
 * The median over rounds of a's figure divided by b's in the same round. Contestants of one
 * round ran minutes apart at most, so on a shared box whose load drifts this pairs like with
 * like better than a ratio of the two medians.
 */
export function paired(ph: R, a: string, b: string, key: string): number | null {
  const xs: number[] = [];
  const ra = (ph[a]?.rounds ?? []) as R[];
  const rb = (ph[b]?.rounds ?? []) as R[];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const [x, y] = [ra[i]![key], rb[i]![key]];
    if (typeof x === 'number' && typeof y === 'number' && y > 0) xs.push(x / y);
  }
  xs.sort((p, q) => p - q);
  return xs.length ? xs[Math.floor(xs.length / 2)]! : null;
}

/**
 * The engines side by side (issue 12): chargegate on SQLite, on PostgreSQL with one instance
 * and with two on one database, same run; ratios paired per round against SQLite.
 */
function printPgTable(s: R): void {
  const rows: string[][] = [['figure (median of rounds)', 'sqlite', 'pg x1', 'pg x2', 'pg1/sqlite', 'pg2/sqlite']];
  const vs = (ph: R, n: string, key: string) => num(paired(ph, n, 'chargegate', key), 2);
  for (const [conns, ph] of Object.entries(s.saturation as R)) {
    const m = (n: string) => ph[n]?.median as R | undefined;
    rows.push([`accepted req/s @${conns} conns`, num(m('chargegate')?.rps2xx), num(m('pg1')?.rps2xx), num(m('pg2')?.rps2xx),
      vs(ph, 'pg1', 'rps2xx'), vs(ph, 'pg2', 'rps2xx')]);
    rows.push([`accept p50/p99/max ms @${conns}`, triple(m('chargegate'), ''), triple(m('pg1'), ''), triple(m('pg2'), ''),
      vs(ph, 'pg1', 'p99'), vs(ph, 'pg2', 'p99')]);
  }
  for (const [rate, ph] of Object.entries(s.open_loop as R)) {
    const m = (n: string) => ph[n]?.median as R | undefined;
    rows.push([`open ${rate}/s accept p50/p99/max ms`, triple(m('chargegate'), 'accept'), triple(m('pg1'), 'accept'),
      triple(m('pg2'), 'accept'), vs(ph, 'pg1', 'accept_p99'), vs(ph, 'pg2', 'accept_p99')]);
    rows.push([`open ${rate}/s POST→callback p50/p99/max`, triple(m('chargegate'), 'callback'), triple(m('pg1'), 'callback'),
      triple(m('pg2'), 'callback'), vs(ph, 'pg1', 'callback_p99'), vs(ph, 'pg2', 'callback_p99')]);
    rows.push([`open ${rate}/s callbacks missing, non-2xx`, ...['chargegate', 'pg1', 'pg2'].map((n) =>
      `${num(m(n)?.callbacks_missing)}, ${num(m(n)?.non2xx)}`), '', '']);
  }
  const st = s.startup as R;
  rows.push(['start to listening ms', ...['chargegate', 'pg1', 'pg2'].map((n) => num(st[n]?.ready_ms)), '', '']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log('');
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  console.log('(pg x2: two instances on one database, both on the server core, the load split between their ports;' +
    ' the PostgreSQL server is unpinned)');
}

export function printTable(s: R): void {
  // Figures: medians over rounds. Ratios: medians of the per-round ratios (paired), except the
  // drain's, which divides by bare's median accept rate.
  const rows: string[][] = [['figure (median of rounds)', 'chargegate', 'bare', 'peer', 'cg/bare', 'cg/peer', 'target']];
  const phase = (ph: R) => {
    const m = (n: string) => ph[n]?.median as R | undefined;
    const vsBare = (key: string) => num(paired(ph, 'chargegate', 'bare', key), 2);
    const vsPeer = (key: string) => num(paired(ph, 'chargegate', 'peer', key), 2);
    return { c: m('chargegate'), b: m('bare'), p: m('peer'), vsBare, vsPeer };
  };
  for (const [conns, ph] of Object.entries(s.saturation as R)) {
    const { c, b, p, vsBare, vsPeer } = phase(ph);
    const t = conns === '100' ? 'cg/bare ≥ 1.0, cg/peer ≥ 2.7' : '';
    rows.push([`accepted req/s @${conns} conns`, num(c?.rps2xx), num(b?.rps2xx), num(p?.rps2xx), vsBare('rps2xx'), vsPeer('rps2xx'), t]);
    rows.push([`accept p50/p99/max ms @${conns}`, triple(c, ''), triple(b, ''), triple(p, ''), vsBare('p99'), vsPeer('p99'),
      'p99 cg/bare ≤ 1.5']);
    rows.push([`callbacks/s during @${conns}`, num(c?.callbacks_per_s), 'none', num(p?.callbacks_per_s), '',
      vsPeer('callbacks_per_s'), '']);
  }
  for (const [rate, ph] of Object.entries(s.open_loop as R)) {
    const { c, b, p, vsBare, vsPeer } = phase(ph);
    rows.push([`open ${rate}/s accept p50/p99/max ms`, triple(c, 'accept'), triple(b, 'accept'), triple(p, 'accept'),
      vsBare('accept_p99'), vsPeer('accept_p99'), '']);
    rows.push([`open ${rate}/s POST→callback p50/p99/max`, triple(c, 'callback'), 'none', triple(p, 'callback'), '',
      vsPeer('callback_p99'), rate === '500' ? 'p99 ≤ 15, max ≤ 100' : '']);
  }
  const d = s.drain as R;
  const bare100 = s.saturation?.['100']?.bare?.median?.rps2xx;
  if (d.chargegate) {
    const cg = d.chargegate.per_s;
    rows.push([`drain ${d.chargegate.requests} queued, req/s`, num(cg), '', num(d.peer?.per_s), ratio(cg, bare100),
      ratio(cg, d.peer?.per_s), 'cg/bare accept@100 ≥ 2']);
  }
  const st = s.startup as R;
  const each = (f: (n: string) => string) => [f('chargegate'), f('bare'), f('peer')];
  rows.push(['start to listening ms', ...each((n) => num(st[n]?.ready_ms)), '', '', '']);
  rows.push(['RSS idle MiB', ...each((n) => num(st[n]?.rss_idle_mib)), '', '', '']);
  const peak = (n: string) => {
    const phases = [...Object.values(s.saturation as R), ...Object.values(s.open_loop as R)];
    const xs = phases.flatMap((ph: R) => (ph[n]?.rounds ?? []).map((x: R) => x.rss_peak_mib as number));
    if (d[n]) xs.push(d[n].rss_peak_mib);
    return xs.length ? Math.max(...xs) : NaN;
  };
  rows.push(['RSS peak MiB (all phases)', ...each((n) => num(peak(n))), '', '', 'cg ≤ 300']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  const m = s.method as R;
  const where = m.pinned ? `server CPU ${m.pinned.server}, load CPU ${m.pinned.load}` : 'unpinned';
  const peer = s.peer_left_out ?? 'BullMQ, appendfsync always';
  console.log(`(load: ${m.tool}; ${where}; nice ${m.nice}; ${m.rounds} rounds of ${m.seconds} s; peer: ${peer})`);
  const f = s.timer_floor_ms as R | undefined;
  if (f) {
    console.log(`(box floor: a 1 ms timer fired late by p99/max ${f.server?.p99}/${f.server?.max} ms on the server core,` +
      ` ${f.load?.p99}/${f.load?.max} ms on the load core)`);
  }
  if ((s.method as R).contestants?.includes('pg1')) printPgTable(s);
  else if (s.pg_left_out) console.log(`(PostgreSQL rows left out: ${s.pg_left_out})`);
}

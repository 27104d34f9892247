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

/** bench/scaling.ts's rows (issue 16 item 4): how cost grows with the work. */
function printScaling(sc: R): void {
  const rows: string[][] = [['how cost grows (bench/scaling.ts)', 'figure', 'target']];
  const st = (x: R | undefined, d = 1) => (x ? `${num(x.p50, d)}/${num(x.p99, d)}/${num(x.max, d)}` : '-');
  const n = Number(sc.aclRows).toLocaleString('en');
  for (const imp of (sc.aclImport ?? []) as R[]) {
    const hold = imp.longestWriteLockHoldMs as R;
    rows.push([`acl import --replace ${n} ${imp.label}`,
      `${num(imp.wallS, 1)} s wall (in force at ${num(imp.inForceAtS, 1)} s), ${num(imp.cpuS, 1)} s CPU, peak RSS ${num(imp.peakRssMiB)} MiB`,
      '≤ 30 s, ≤ 200 MB']);
    rows.push(['  a concurrent writer refused for (ms)', `${num(hold?.atLeast)}–${num(hold?.atMost)} (probe paused up to ${num(imp.probePausedUpToMs)})`,
      '≤ 100']);
    const a = imp.acceptDuringImport as R;
    rows.push(['  accept p50/p99/max ms meanwhile (100/s)', `${st(a)}, ${num(a?.non202)} of ${num(a?.n)} not 202`, '']);
  }
  const bad = sc.aclImportBadLine as R | undefined;
  if (bad) rows.push([`  a malformed line at row ${Number(bad.badRow).toLocaleString('en')}`, `${bad.unchanged ? 'refused, list unchanged' : 'LIST CHANGED'} after ${num(bad.refusedAfterS, 1)} s`, 'unchanged']);
  const dl = sc.decisionLatency as R | undefined;
  if (dl) {
    const big = `entries${sc.aclRows}`;
    rows.push(['decide() µs p50/p99/max, 10 entries', st(dl.decideMicroseconds?.entries10), '']);
    rows.push([`decide() µs p50/p99/max, ${n} entries`, st(dl.decideMicroseconds?.[big]), '']);
    const e2e = (xs: R[] | undefined) => (xs ?? []).map((x) => st(x)).join(' | ');
    rows.push(['POST→callback ms @200/s by round, 10 entries', e2e(dl.postToCallbackMs200PerS?.entries10), '']);
    rows.push([`POST→callback ms @200/s by round, ${n} entries`, e2e(dl.postToCallbackMs200PerS?.[big]), '']);
  }
  const ac = sc.acceptPerS as R | undefined;
  if (ac) {
    rows.push(['accepted req/s @100 conns, empty queue (rounds)', (ac.empty as number[]).join(', '), '']);
    rows.push(['accepted req/s @100 conns, full backlog (rounds)', `${(ac.backlog as number[]).join(', ')} (best/best ${num(ac.ratio, 2)})`, '']);
  }
  const hm = sc.healthAndMetricsMs as R | undefined;
  if (hm) {
    for (const path of ['health', 'metrics']) {
      rows.push([`/${path} ms p50/p99/max, empty | backlog of ${num(hm.backlog?.openRequests)}`, `${st(hm.empty?.[path], 2)} | ${st(hm.backlog?.[path], 2)}`, '']);
    }
  }
  const or = sc.callbackOrigins500PerS as R | undefined;
  if (or) {
    for (const k of ['origins1', 'origins1000']) {
      const xs = (or[k] ?? []) as R[];
      rows.push([`${k.slice(7)} callback origin(s) @500/s: delivered/s, ms p50/p99/max`, xs.map((x) => `${num(x.deliveredPerS)}/s ${st(x)}, lost ${num(x.lost)}`).join(' | '), '']);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log('');
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  console.log(`(${sc.method}; load average at start/end ${JSON.stringify(sc.loadAverage)})`);
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
  if (s.scaling) printScaling(s.scaling as R);
}

// The bench's table: one row per figure, one column per contestant, chargegate's ratios to
// bare Hapi + joi and to the peer, and issue 16's target where there is one.

type R = Record<string, any>;

const num = (x: unknown, d = 0) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');
const ratio = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' && b > 0 ? (a / b).toFixed(2) : '-');
const triple = (m: R | undefined, k: string) => (m ? `${num(m[`${k}_p50`], 1)}/${num(m[`${k}_p99`], 1)}/${num(m[`${k}_max`], 0)}` : '-');

export function printTable(s: R): void {
  const rows: string[][] = [['figure (median of rounds)', 'chargegate', 'bare', 'peer', 'cg/bare', 'cg/peer', 'target']];
  for (const [conns, ph] of Object.entries(s.saturation as R)) {
    const m = (n: string) => ph[n]?.median as R | undefined;
    const [c, b, p] = [m('chargegate'), m('bare'), m('peer')];
    const t = conns === '100' ? 'cg/bare ≥ 1.0, cg/peer ≥ 2.7' : '';
    rows.push([`accepted req/s @${conns} conns`, num(c?.rps2xx), num(b?.rps2xx), num(p?.rps2xx), ratio(c?.rps2xx, b?.rps2xx), ratio(c?.rps2xx, p?.rps2xx), t]);
    rows.push([`accept p50/p99/max ms @${conns}`, `${num(c?.p50, 1)}/${num(c?.p99, 1)}/${num(c?.max)}`, `${num(b?.p50, 1)}/${num(b?.p99, 1)}/${num(b?.max)}`,
      `${num(p?.p50, 1)}/${num(p?.p99, 1)}/${num(p?.max)}`, ratio(c?.p99, b?.p99), ratio(c?.p99, p?.p99), 'p99 cg/bare ≤ 1.5']);
    rows.push([`callbacks/s during @${conns}`, num(c?.callbacks_per_s), 'none', num(p?.callbacks_per_s), '', ratio(c?.callbacks_per_s, p?.callbacks_per_s), '']);
  }
  for (const [rate, ph] of Object.entries(s.open_loop as R)) {
    const m = (n: string) => ph[n]?.median as R | undefined;
    const [c, b, p] = [m('chargegate'), m('bare'), m('peer')];
    rows.push([`open ${rate}/s accept p50/p99/max ms`, triple(c, 'accept'), triple(b, 'accept'), triple(p, 'accept'), ratio(c?.accept_p99, b?.accept_p99), ratio(c?.accept_p99, p?.accept_p99), '']);
    rows.push([`open ${rate}/s POST→callback p50/p99/max`, triple(c, 'callback'), 'none', triple(p, 'callback'), '', ratio(c?.callback_p99, p?.callback_p99),
      rate === '500' ? 'p99 ≤ 15, max ≤ 100' : '']);
  }
  const d = s.drain as R;
  const bare100 = s.saturation?.['100']?.bare?.median?.rps2xx;
  if (d.chargegate) {
    rows.push([`drain ${d.chargegate.requests} queued, req/s`, num(d.chargegate.per_s), '', num(d.peer?.per_s), ratio(d.chargegate.per_s, bare100),
      ratio(d.chargegate.per_s, d.peer?.per_s), 'cg/bare accept@100 ≥ 2']);
  }
  const st = s.startup as R;
  rows.push(['start to listening ms', num(st.chargegate?.ready_ms), num(st.bare?.ready_ms), num(st.peer?.ready_ms), '', '', '']);
  rows.push(['RSS idle MiB', num(st.chargegate?.rss_idle_mib), num(st.bare?.rss_idle_mib), num(st.peer?.rss_idle_mib), '', '', '']);
  const peak = (n: string) => {
    const xs = [...Object.values(s.saturation as R), ...Object.values(s.open_loop as R)].flatMap((ph: R) => (ph[n]?.rounds ?? []).map((x: R) => x.rss_peak_mib));
    if (d[n]) xs.push(d[n].rss_peak_mib);
    return xs.length ? Math.max(...xs) : NaN;
  };
  rows.push(['RSS peak MiB (all phases)', num(peak('chargegate')), num(peak('bare')), num(peak('peer')), '', '', 'cg ≤ 300']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  console.log(`(load: ${s.method.tool}; ${s.method.pinned ? `server CPU ${s.method.pinned.server}, load CPU ${s.method.pinned.load}` : 'unpinned'};` +
    ` nice ${s.method.nice}; ${s.method.rounds} rounds of ${s.method.seconds} s; peer: ${s.peer_left_out ?? 'BullMQ, appendfsync always'})`);
  const f = s.timer_floor_ms as R | undefined;
  if (f) console.log(`(box floor: a 1 ms timer fired late by p99/max ${f.server?.p99}/${f.server?.max} ms on the server core, ${f.load?.p99}/${f.load?.max} ms on the load core)`);
}

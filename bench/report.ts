// The bench's table: one row per figure, one column per contestant, chargegate's ratios to
// bare Hapi + joi and to the peer, and issue 16's target where there is one.

type R = Record<string, any>;

const num = (x: unknown, d = 0) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');
const ratio = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' && b > 0 ? (a / b).toFixed(2) : '-');

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
const pr = (ph: R, a: string, b: string, key: string) => num(paired(ph, a, b, key), 2);
const triple = (m: R | undefined, k: string) => (m ? `${num(m[`${k}_p50`], 1)}/${num(m[`${k}_p99`], 1)}/${num(m[`${k}_max`], 0)}` : '-');

export function printTable(s: R): void {
  // Figures: medians over rounds. Ratios: medians of the per-round ratios (paired), except the
  // drain's, which divides by bare's median accept rate.
  const rows: string[][] = [['figure (median of rounds)', 'chargegate', 'bare', 'peer', 'cg/bare', 'cg/peer', 'target']];
  for (const [conns, ph] of Object.entries(s.saturation as R)) {
    const m = (n: string) => ph[n]?.median as R | undefined;
    const [c, b, p] = [m('chargegate'), m('bare'), m('peer')];
    const t = conns === '100' ? 'cg/bare ≥ 1.0, cg/peer ≥ 2.7' : '';
    rows.push([`accepted req/s @${conns} conns`, num(c?.rps2xx), num(b?.rps2xx), num(p?.rps2xx), pr(ph, 'chargegate', 'bare', 'rps2xx'),
      pr(ph, 'chargegate', 'peer', 'rps2xx'), t]);
    rows.push([`accept p50/p99/max ms @${conns}`, `${num(c?.p50, 1)}/${num(c?.p99, 1)}/${num(c?.max)}`, `${num(b?.p50, 1)}/${num(b?.p99, 1)}/${num(b?.max)}`,
      `${num(p?.p50, 1)}/${num(p?.p99, 1)}/${num(p?.max)}`, pr(ph, 'chargegate', 'bare', 'p99'), pr(ph, 'chargegate', 'peer', 'p99'), 'p99 cg/bare ≤ 1.5']);
    rows.push([`callbacks/s during @${conns}`, num(c?.callbacks_per_s), 'none', num(p?.callbacks_per_s), '', pr(ph, 'chargegate', 'peer', 'callbacks_per_s'), '']);
  }
  for (const [rate, ph] of Object.entries(s.open_loop as R)) {
    const m = (n: string) => ph[n]?.median as R | undefined;
    const [c, b, p] = [m('chargegate'), m('bare'), m('peer')];
    rows.push([`open ${rate}/s accept p50/p99/max ms`, triple(c, 'accept'), triple(b, 'accept'), triple(p, 'accept'), pr(ph, 'chargegate', 'bare', 'accept_p99'),
      pr(ph, 'chargegate', 'peer', 'accept_p99'), '']);
    rows.push([`open ${rate}/s POST→callback p50/p99/max`, triple(c, 'callback'), 'none', triple(p, 'callback'), '', pr(ph, 'chargegate', 'peer', 'callback_p99'),
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

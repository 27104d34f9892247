// What a stop signal means while the service runs or stops (README "Stopping").
//
// Operators and supervisors often deliver one stop request as several signals: coreutils
// `timeout` signals the process and then its whole group, `npm start` forwards the SIGINT
// the terminal already sent to the group, systemd may signal the main process and its
// control group. Those copies arrive together; none means "give up the graceful stop".
// So only a signal that comes at least REPEAT_GRACE_MS after the first is an operator
// asking again: then the process exits at once (exit 1; leases make that safe).

/** Signals closer than this to the first one are copies of the same stop request. */
export const REPEAT_GRACE_MS = 2000;

export type SignalAction = 'stop' | 'ignore' | 'exit_now';

/** `firstAt`: when the first stop signal came, or null if none did yet. */
export function signalAction(firstAt: number | null, now: number): SignalAction {
  if (firstAt === null) return 'stop';
  return now - firstAt < REPEAT_GRACE_MS ? 'ignore' : 'exit_now';
}

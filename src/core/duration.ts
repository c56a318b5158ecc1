/** The one duration parser: every --timeout, --op-timeout, --older-than and --linger takes `90`, `90s`, `15m`, `6h`, `7d` (and `500ms`). */
import { UniproveError } from './errors.js';

const UNIT_MS = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 } as const;

/** Parse `90` (seconds), `500ms`, `90s`, `30m`, `2h`, `7d`, `1w` into milliseconds; `flag` names it in the error. */
export function parseDuration(text: string, flag?: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$/.exec(text.trim());
  const ms = m ? Math.round(Number(m[1]) * UNIT_MS[(m[2] ?? 's') as keyof typeof UNIT_MS]) : 0;
  if (!m || ms <= 0) {
    throw new UniproveError('E_USAGE', {
      message: `${flag ?? 'a duration'} must be seconds or a number with a unit (90, 90s, 15m, 6h), not ${JSON.stringify(text)}`,
      hint: 'Write seconds (90) or a number with a unit: 90s, 15m, 6h, 7d.',
    });
  }
  return ms;
}

/** A duration for humans: `90 s`, `15 min`, `6 h` (the largest whole unit). */
export function formatDuration(ms: number): string {
  if (ms % 3600e3 === 0) return `${ms / 3600e3} h`;
  if (ms % 60e3 === 0) return `${ms / 60e3} min`;
  return `${Math.round(ms / 100) / 10} s`;
}

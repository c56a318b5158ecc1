/**
 * Adapter from core progress events to the terminal. On a TTY a listr2-style
 * live line is drawn on stderr; otherwise one plain line per step. Never on
 * stdout, so --json output stays clean.
 */
import type { ProgressEvent } from '../core/progress.js';
import type { Output } from './render.js';

export interface ProgressRenderer {
  onProgress: (event: ProgressEvent) => void;
  done: () => void;
}

/** A progress sink for the given output; silent when `quiet`. */
export function createProgress(out: Output, options: { quiet?: boolean } = {}): ProgressRenderer {
  const stream = out.stderr as NodeJS.WriteStream;
  const tty = Boolean(stream.isTTY) && !process.env.CI;
  let lastLine = '';
  let lastPlain = 0;
  const clear = () => {
    if (tty && lastLine) stream.write('\r\x1b[2K');
    lastLine = '';
  };
  return {
    onProgress(event) {
      if (options.quiet) return;
      const text = formatEvent(event);
      if (tty) {
        clear();
        if (event.kind === 'step-done' || event.kind === 'note') {
          stream.write(`${text}\n`);
        } else {
          const width = stream.columns ?? 100;
          lastLine = text.slice(0, Math.max(10, width - 1));
          stream.write(lastLine);
        }
        return;
      }
      // Plain mode: every step start/end and at most one update a second.
      const now = Date.now();
      if (event.kind === 'update' && now - lastPlain < 1000) return;
      lastPlain = now;
      stream.write(`${text}\n`);
    },
    done() {
      clear();
    },
  };
}

function formatEvent(event: ProgressEvent): string {
  switch (event.kind) {
    case 'step-start':
      return `> ${event.step}${event.detail ? `: ${event.detail}` : ''}`;
    case 'step-done':
      return `✔ ${event.step}${event.detail ? `: ${event.detail}` : ''}`;
    case 'update':
      return `  ${event.step}: ${event.detail ?? ''}`;
    case 'note':
      return `  ${event.detail ?? event.step}`;
  }
}

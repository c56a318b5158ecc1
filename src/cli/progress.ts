/**
 * Adapter from core progress events to the terminal, always on stderr so
 * stdout stays clean for results and --json.
 *
 * On a TTY each step is a listr2 task (spinner, live detail line, ✔ when it
 * ends); core emits steps as it discovers them, so each step runs as its own
 * one-task list. Elsewhere (CI, pipes) one plain line per step, and at most
 * one update a second.
 */
import type { ProgressEvent } from '../core/progress.js';
import type { Output } from './render.js';

export interface ProgressRenderer {
  onProgress: (event: ProgressEvent) => void;
  /** Finish whatever step is still shown and wait until it is drawn; await before printing results. */
  done: () => Promise<void>;
}

interface LiveStep {
  step: string;
  setTitle: (title: string) => void;
  setOutput: (text: string) => void;
  finish: () => void;
  rendered: Promise<void>;
}

/** A progress sink for the given output; silent when `quiet`. */
export function createProgress(
  out: Output,
  options: { quiet?: boolean; plain?: boolean } = {},
): ProgressRenderer {
  const stream = out.stderr as NodeJS.WriteStream;
  const tty = Boolean(stream.isTTY) && !options.plain && !process.env.CI;
  if (options.quiet) return { onProgress: () => {}, done: async () => {} };
  return tty ? listrProgress(stream) : plainProgress(stream);
}

function plainProgress(stream: NodeJS.WritableStream): ProgressRenderer {
  let lastUpdate = 0;
  return {
    onProgress(event) {
      const now = Date.now();
      if (event.kind === 'update') {
        if (now - lastUpdate < 1000) return;
        lastUpdate = now;
      }
      stream.write(`${formatEvent(event)}\n`);
    },
    async done() {},
  };
}

function listrProgress(stream: NodeJS.WriteStream): ProgressRenderer {
  // listr2 loads with the first step drawn, not with every command (start-up sits in front of each run).
  // Everything it draws goes to stderr.
  const listr2 = import('listr2').then((m) => ({
    Listr: m.Listr,
    logger: new m.ListrLogger({ processOutput: new m.ProcessOutput(stream, stream) }),
  }));
  listr2.catch(() => {});
  let live: LiveStep | undefined;
  let chain: Promise<void> = Promise.resolve();
  const start = (step: string, title: string) => {
    let finish = () => {};
    let setTitle: (t: string) => void = () => {};
    let setOutput: (t: string) => void = () => {};
    const running = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const makeList = ({ Listr, logger }: Awaited<typeof listr2>) =>
      new Listr(
        [
          {
            title,
            task: async (_ctx, task) => {
              setTitle = (t) => {
                task.title = t;
              };
              setOutput = (t) => {
                task.output = t;
              };
              await running;
            },
          },
        ],
        // listr2 falls back to its line renderer when stdout is not a terminal (`> file`): stderr too.
        { rendererOptions: { logger }, fallbackRendererOptions: { logger }, exitOnError: false },
      );
    // Steps render one after another, never two lists at once.
    const rendered = chain.then(() =>
      listr2
        .then((m) => makeList(m).run())
        .then(
          () => undefined,
          () => undefined,
        ),
    );
    chain = rendered;
    live = {
      step,
      setTitle: (t) => setTitle(t),
      setOutput: (t) => setOutput(t),
      finish,
      rendered,
    };
  };
  const end = (title?: string) => {
    if (!live) return;
    if (title) live.setTitle(title);
    live.finish();
    live = undefined;
  };
  return {
    onProgress(event) {
      switch (event.kind) {
        case 'step-start':
          end();
          start(event.step, `${event.step}${event.detail ? `: ${event.detail}` : ''}`);
          return;
        case 'update':
          if (live) live.setOutput(event.detail ?? '');
          else start(event.step, `${event.step}: ${event.detail ?? ''}`);
          return;
        case 'step-done':
          end(`${event.step}${event.detail ? `: ${event.detail}` : ''}`);
          return;
        case 'note':
          end();
          chain = chain.then(() => {
            stream.write(`  ${event.detail ?? event.step}\n`);
          });
          return;
      }
    },
    async done() {
      end();
      await chain;
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

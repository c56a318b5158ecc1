/**
 * A fleet's live view on stderr: on a terminal, one listr2 task whose title is
 * the fleet line (done/running/queued/retried) and whose output is one line
 * per running instance (input, zone, state, elapsed); elsewhere, one plain
 * line per change of an instance's state and a fleet line at most once a
 * second; with --json, every event as an NDJSON line.
 */
import { fleetEventLine } from '../core/gcp/fleet/record.js';
import type { AttemptState, FleetEvent } from '../core/gcp/fleet/scheduler.js';
import type { Output } from './render.js';

export interface FleetProgressRenderer {
  onEvent: (event: FleetEvent) => void;
  /** Draw the last state and stop; await before printing the summary table. */
  done: () => Promise<void>;
}

const ENDED: AttemptState[] = ['succeeded', 'failed', 'preempted', 'capacity', 'error', 'interrupted'];
const secs = (ms: number) => `${Math.round(ms / 1000)} s`;

interface InstanceLine {
  input: string;
  zone: string;
  state: AttemptState;
  attempt: number;
  elapsedMs: number;
}

/** The line of one instance, as the live view and the plain lines show it. */
export function instanceLine(index: number, i: InstanceLine): string {
  const input = i.input.length > 40 ? `${i.input.slice(0, 39)}…` : i.input;
  return `#${index + 1} ${input}  ${i.zone}  ${i.state}${i.attempt > 1 ? ` (attempt ${i.attempt})` : ''}  ${secs(i.elapsedMs)}`;
}

/** The fleet line. */
export function fleetLine(e: Extract<FleetEvent, { kind: 'fleet' }>): string {
  return `fleet: ${e.done} done, ${e.running} running, ${e.queued} queued, ${e.retried} retried${e.failed ? `, ${e.failed} failed` : ''} (${e.concurrency} at once in ${e.zone}, ${secs(e.elapsedMs)})`;
}

/** A renderer for the given output and mode. */
export function createFleetProgress(
  out: Output,
  options: {
    json?: boolean;
    quiet?: boolean;
    plain?: boolean;
    /** The environment (default the process's): CI set means no live view. */
    env?: Record<string, string | undefined>;
  } = {},
): FleetProgressRenderer {
  const stream = out.stderr as NodeJS.WriteStream;
  if (options.quiet) return { onEvent: () => {}, done: async () => {} };
  if (options.json) {
    return { onEvent: (e) => void stream.write(`${fleetEventLine(e)}\n`), done: async () => {} };
  }
  const tty = Boolean(stream.isTTY) && !options.plain && !(options.env ?? process.env).CI;
  return tty ? liveFleetProgress(stream) : plainFleetProgress(stream);
}

function plainFleetProgress(stream: NodeJS.WritableStream): FleetProgressRenderer {
  const states = new Map<number, string>();
  let lastFleet = 0;
  let pendingFleet: string | undefined;
  return {
    onEvent(e) {
      if (e.kind === 'instance') {
        const key = `${e.state}/${e.attempt}`;
        if (states.get(e.index) === key) return; // a tick: elapsed only
        states.set(e.index, key);
        stream.write(`  ${instanceLine(e.index, e)}\n`);
      } else if (e.kind === 'fleet') {
        pendingFleet = fleetLine(e);
        if (Date.now() - lastFleet < 1000) return;
        lastFleet = Date.now();
        stream.write(`${pendingFleet}\n`);
        pendingFleet = undefined;
      } else if (e.kind === 'zone') {
        stream.write(`  ${e.reason} in ${e.from}: moving to ${e.to}\n`);
      } else {
        stream.write(`  ${e.reason} in ${e.zone}: waiting ${secs(e.waitMs)}, ${e.concurrency} at once\n`);
      }
    },
    async done() {
      if (pendingFleet) stream.write(`${pendingFleet}\n`);
    },
  };
}

function liveFleetProgress(stream: NodeJS.WriteStream): FleetProgressRenderer {
  const running = new Map<number, InstanceLine>();
  let title = 'fleet: starting';
  let setTitle: (t: string) => void = () => {};
  let setOutput: (t: string) => void = () => {};
  let finish = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const redraw = () => {
    setTitle(title);
    setOutput(
      [...running.entries()]
        .sort(([a], [b]) => a - b)
        .map(([index, i]) => instanceLine(index, i))
        .join('\n'),
    );
  };
  // listr2 loads with the first event, not with every command.
  const rendered = import('listr2').then(async (m) => {
    const logger = new m.ListrLogger({ processOutput: new m.ProcessOutput(stream, stream) });
    const list = new m.Listr(
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
            redraw();
            await finished;
          },
        },
      ],
      // listr2 falls back to its line renderer when stdout is not a terminal (--json > file): that one
      // must write to stderr too.
      { rendererOptions: { logger }, fallbackRendererOptions: { logger }, exitOnError: false },
    );
    await list.run().catch(() => {});
  });
  return {
    onEvent(e) {
      if (e.kind === 'instance') {
        if (ENDED.includes(e.state)) running.delete(e.index);
        else running.set(e.index, e);
      } else if (e.kind === 'fleet') title = fleetLine(e);
      else if (e.kind === 'zone') title = `${title} · ${e.reason} in ${e.from}: moving to ${e.to}`;
      else title = `${title} · ${e.reason}: waiting ${secs(e.waitMs)}`;
      redraw();
    },
    async done() {
      running.clear();
      redraw();
      finish();
      await rendered;
    },
  };
}

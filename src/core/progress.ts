/** Progress events that core functions emit through an `onProgress` callback. */
export type ProgressEvent =
  | { kind: 'step-start'; step: string; detail?: string }
  | {
      kind: 'update';
      step: string;
      detail?: string;
      done?: number;
      total?: number;
      /** For byte transfers: the current rate and the time left at that rate. */
      bytesPerSecond?: number;
      etaSeconds?: number;
    }
  | { kind: 'step-done'; step: string; detail?: string }
  | { kind: 'note'; step: string; detail?: string };

export type OnProgress = (event: ProgressEvent) => void;

/** A progress callback that drops everything. */
export const noProgress: OnProgress = () => {};

/** Human form of a byte count (binary units). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

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

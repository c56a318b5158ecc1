/**
 * One error class for everything uniprove can tell the user about.
 *
 * Every code belongs to an exit class, so the CLI can turn any failure into a
 * distinct exit status without knowing where it came from, and docs/errors.md
 * holds one anchor per code (a unit test keeps the two in step).
 */

/** Exit statuses of the CLI, by class of failure. */
export const ExitCode = {
  ok: 0,
  /** The work ran and failed: a prover exited non-zero, verify found a missing file. */
  failure: 1,
  /** Bad flags, bad config, bad input file: fix the input and run again. */
  usage: 2,
  /** A tool or resource uniprove needs is missing on this host (strace, ops, KVM). */
  environment: 3,
  /** A download or digest check failed. */
  integrity: 4,
  /** A cloud API refused or failed. */
  cloud: 5,
  /** A run did not finish in time. */
  timeout: 6,
  /** A bug in uniprove itself (EX_SOFTWARE). */
  internal: 70,
  /** Interrupted by Ctrl-C (128 + SIGINT). */
  interrupted: 130,
} as const;

export type ExitClass = keyof typeof ExitCode;

/** Every error code uniprove raises, with its exit class. */
export const ERROR_CODES = {
  E_USAGE: 'usage',
  E_CONFIG: 'usage',
  E_NOT_FOUND: 'usage',
  E_NOT_ELF: 'usage',
  E_ELF_TRUNCATED: 'usage',
  E_ELF_UNSUPPORTED: 'usage',
  E_IS_DIRECTORY: 'usage',
  E_NOT_REGULAR_FILE: 'usage',
  E_PATH_ESCAPE: 'usage',
  E_STRACE_LOG: 'usage',
  E_LOG_INPUT: 'usage',
  E_TOOL_MISSING: 'environment',
  E_PTRACE_DENIED: 'environment',
  E_PROBE_FAILED: 'failure',
  E_PROBE_TIMEOUT: 'timeout',
  E_COMMAND_FAILED: 'failure',
  E_COMMAND_TIMEOUT: 'timeout',
  E_VERIFY_FAILED: 'failure',
  E_RUN_FAILED: 'failure',
  E_RUN_TIMEOUT: 'timeout',
  E_DOWNLOAD: 'integrity',
  E_DIGEST_MISMATCH: 'integrity',
  E_PACKAGE_CHANGED: 'integrity',
  E_IMAGE_NOT_PACKAGE: 'integrity',
  E_OPS: 'environment',
  E_NANOS_MISSING: 'environment',
  E_KVM: 'environment',
  E_UNMAP_DEADLOCK: 'environment',
  E_VOLUME: 'failure',
  E_VOLUME_MISSING: 'usage',
  E_VOLUME_EXISTS: 'usage',
  E_DISK_SPACE: 'environment',
  E_DISK_FULL: 'environment',
  E_READ_ONLY: 'environment',
  E_PERMISSION: 'environment',
  E_ENV_PATH: 'environment',
  E_NAME_TOO_LONG: 'usage',
  E_FS_LIMIT: 'environment',
  E_PROOF_TOO_LARGE: 'usage',
  E_PROOF_TRUNCATED: 'integrity',
  E_PROOF_CORRUPT: 'integrity',
  E_GCP: 'cloud',
  E_GCP_AUTH: 'cloud',
  E_GCP_TIMEOUT: 'timeout',
  E_GCP_PREEMPTED: 'failure',
  E_GCP_CAPACITY: 'cloud',
  E_GCP_MAX_COST: 'usage',
  E_PORT_IN_USE: 'environment',
  E_INTERRUPTED: 'interrupted',
  E_INTERNAL: 'internal',
} as const satisfies Record<string, ExitClass>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Hints for codes raised where the caller has nothing more to say; every error carries one (the --json contract). */
const DEFAULT_HINTS: Partial<Record<ErrorCode, string>> = {
  E_GCP:
    "Read the call and the HTTP status in the message: a 4xx is a request or permission to fix, a 5xx outlived uniprove's retries (try again later). `uniprove gcp ls` shows anything left over and `uniprove gcp gc` deletes it.",
  E_INTERRUPTED:
    'Nothing is left running: child processes were stopped and cloud resources deleted (the run record says what was kept). Run the command again to start over.',
  E_INTERNAL:
    'This is a bug in uniprove: please report it with the command you ran and the stack printed on stderr.',
};

/** The hint of a code whose raiser gave none: its own default, else the page that explains the code. */
export function defaultHint(code: string): string {
  return (
    DEFAULT_HINTS[code as ErrorCode] ??
    `See docs/errors.md#${code.toLowerCase()} for what this error means and what to do next.`
  );
}

export interface UniproveErrorOptions {
  /** What went wrong, naming the offending value. */
  message: string;
  /** What the user should do next. */
  hint?: string;
  cause?: unknown;
  /** Machine-readable facts (paths, exit codes, dot-paths of config errors). */
  details?: Record<string, unknown>;
}

/** An error as records and --json output keep it. */
export interface ErrorSummary {
  code: string;
  message: string;
  hint?: string;
}

/** The summary of any error: a UniproveError's own, anything else under `fallback` with its text. */
export function summarizeError(error: unknown, fallback = 'E_INTERNAL'): ErrorSummary {
  if (isUniproveError(error)) return error.summary();
  return {
    code: fallback,
    message: error instanceof Error ? error.message : String(error),
    hint: defaultHint(fallback),
  };
}

/** The one error type that core code throws on purpose. */
export class UniproveError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, options: UniproveErrorOptions) {
    super(options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UniproveError';
    this.code = code;
    this.hint = options.hint || defaultHint(code);
    this.details = options.details ?? {};
  }

  /** What a record or a --json line keeps of the error: code, message and hint (details stay out). */
  summary(): ErrorSummary {
    return { code: this.code, message: this.message, hint: this.hint };
  }

  /** The exit status the CLI uses for this error. */
  get exitCode(): number {
    return ExitCode[ERROR_CODES[this.code]];
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      hint: this.hint,
      ...(Object.keys(this.details).length > 0 ? { details: this.details } : {}),
    };
  }
}

/** True when `value` is a UniproveError (also across module copies). */
export function isUniproveError(value: unknown): value is UniproveError {
  return value instanceof UniproveError || (value instanceof Error && value.name === 'UniproveError');
}

/**
 * Streaming parser for strace logs: which files a run opened, executed, probed
 * in vain, or wrote.
 *
 * Why it is hand-written: logs of real provers run to hundreds of megabytes, so
 * the parser reads chunks as latin1 strings (one byte = one char, no UTF-8
 * decode of the whole log), splits lines with indexOf, and walks each line with
 * charCodeAt: no regex per line, no readline, no per-line slices. Only paths are
 * decoded (escapes, UTF-8) and interned; per-pid state is the cwd, an fd table
 * (only for logs without `-y`) and at most one unfinished call.
 */
import { isAscii } from 'node:buffer';
import { closeSync, openSync, readSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { UniproveError } from '../errors.js';
import { notRegularFile, pipeBlocks } from '../fs.js';
import type { FailedSearch, TraceAccess, TraceResult, TraceSpawn, TraceWarning } from './types.js';

export interface ParseStraceOptions {
  /**
   * The cwd of the first traced process (absolute), to resolve its relative paths (when the log has no `-y`
   * decorations).
   */
  cwd?: string;
  /** Pid for lines without a pid prefix (default: the `.PID` suffix of an `-ff` file, else 0). */
  pid?: number;
  /**
   * The traced program's path, when other programs ran before it in the log (a sandbox that starts it): its
   * first exec is the program's own, and what it starts are its spawns. Default: the first exec in the log.
   */
  program?: string;
  /** Keep /proc, /sys and /dev paths (default false: dropped and counted). */
  keepPseudo?: boolean;
  /** Samples kept per warning kind (default 5). */
  warningSamples?: number;
  signal?: AbortSignal;
}

/** What a path string argument, a dirfd or a flags argument means for a call. */
enum Kind {
  Open = 1,
  OpenAt2 = 2,
  Creat = 3,
  Exec = 4,
  Probe = 5,
  Chdir = 6,
  Fchdir = 7,
  Fork = 8,
  WriteDest = 9,
  /** getdents64: a listing of the folder its fd argument stands for. */
  List = 10,
}

interface Spec {
  kind: Kind;
  /** Index of the dirfd argument, -1 when relative to the cwd. */
  dirfd: number;
  /** Index of the path argument. */
  path: number;
  /** Index of the flags argument (opens), -1 when none. */
  flags: number;
}

const spec = (kind: Kind, dirfd: number, path: number, flags = -1): Spec => ({ kind, dirfd, path, flags });

const SYSCALLS = new Map<string, Spec>([
  ['open', spec(Kind.Open, -1, 0, 1)],
  ['openat', spec(Kind.Open, 0, 1, 2)],
  ['openat2', spec(Kind.OpenAt2, 0, 1, 2)],
  ['creat', spec(Kind.Creat, -1, 0)],
  ['execve', spec(Kind.Exec, -1, 0)],
  ['execveat', spec(Kind.Exec, 0, 1)],
  ['access', spec(Kind.Probe, -1, 0)],
  ['faccessat', spec(Kind.Probe, 0, 1)],
  ['faccessat2', spec(Kind.Probe, 0, 1)],
  ['stat', spec(Kind.Probe, -1, 0)],
  ['lstat', spec(Kind.Probe, -1, 0)],
  ['stat64', spec(Kind.Probe, -1, 0)],
  ['lstat64', spec(Kind.Probe, -1, 0)],
  ['newfstatat', spec(Kind.Probe, 0, 1)],
  ['fstatat64', spec(Kind.Probe, 0, 1)],
  ['statx', spec(Kind.Probe, 0, 1)],
  ['readlink', spec(Kind.Probe, -1, 0)],
  ['readlinkat', spec(Kind.Probe, 0, 1)],
  ['chdir', spec(Kind.Chdir, -1, 0)],
  ['fchdir', spec(Kind.Fchdir, -1, 0)],
  ['getdents64', spec(Kind.List, -1, -1)],
  ['getdents', spec(Kind.List, -1, -1)],
  ['clone', spec(Kind.Fork, -1, -1)],
  ['clone3', spec(Kind.Fork, -1, -1)],
  ['fork', spec(Kind.Fork, -1, -1)],
  ['vfork', spec(Kind.Fork, -1, -1)],
  ['mkdir', spec(Kind.WriteDest, -1, 0)],
  ['mkdirat', spec(Kind.WriteDest, 0, 1)],
  ['truncate', spec(Kind.WriteDest, -1, 0)],
  ['rename', spec(Kind.WriteDest, -1, 1)],
  ['renameat', spec(Kind.WriteDest, 2, 3)],
  ['renameat2', spec(Kind.WriteDest, 2, 3)],
  ['link', spec(Kind.WriteDest, -1, 1)],
  ['linkat', spec(Kind.WriteDest, 2, 3)],
  ['symlink', spec(Kind.WriteDest, -1, 1)],
  ['symlinkat', spec(Kind.WriteDest, 1, 2)],
]);

const MAX_PIDS_KEPT = 64;
/** The link to a process's own program: an exec of it runs the program again. */
const SELF_EXE = /^\/proc\/(?:self|\d+)\/exe$/;
/** Forks whose child has not shown up yet, kept to match a namespace's pids (older ones are dropped). */
const MAX_UNCLAIMED = 64;
/** Arguments kept of a command line a program ran. */
const MAX_ARGV = 64;
/** Longer lines are not strace output (`-s 4096` keeps real lines far below this). */
const MAX_LINE = 1 << 20;
const UNFINISHED = ' <unfinished ...>';
const RESUMED = ' resumed>';

// Char codes.
const CR = 13;
const SP = 32;
const QUOTE = 34;
const PLUS = 43;
const COMMA = 44;
const MINUS = 45;
const DOT = 46;
const SLASH = 47;
const D0 = 48;
const D9 = 57;
const COLON = 58;
const LT = 60;
const EQ = 61;
const GT = 62;
const QMARK = 63;
const LBRACK = 91;
const BSLASH = 92;
const RBRACK = 93;
const LPAREN = 40;
const RPAREN = 41;
const LBRACE = 123;
const RBRACE = 125;
const UNDERSCORE = 95;
const PIPE = 124;

/** Chars that end or nest an argument, or open a string or a `-y` decoration (1), by char code. */
const ARG_SPECIAL = new Uint8Array(256);
for (const c of '"<{}[](),') ARG_SPECIAL[c.charCodeAt(0)] = 1;

const isDigit = (c: number) => c >= D0 && c <= D9;
const isNameChar = (c: number) => (c >= 97 && c <= 122) || isDigit(c) || c === UNDERSCORE;

interface Fs {
  cwd: string | undefined;
}

interface Proc {
  fs: Fs;
  /** fd -> path, only filled from undecorated results (logs without `-y`). */
  files: Map<number, string>;
  /** The first half of an unfinished call, from its name on. */
  partial: string | undefined;
  partialLine: number;
  /** The program it runs: undefined until the traced program's own exec (and in processes outside its tree). */
  image: string | undefined;
  /** True once it runs another program in a child: it and what it starts are helpers, not the program. */
  helper: boolean;
}

/** A process forked by the traced program (not a thread), kept until the end to see whether it ran a program. */
interface Fork {
  syscall: string;
  parent: string;
  line: number;
  /** CLONE_VM (vfork, posix_spawn): a child that only ever execs or exits. */
  sharesMemory: boolean;
}

/** Internal record: every field set from the start so all records share one shape. */
interface Rec {
  path: string;
  syscall: string;
  pids: number[];
  count: number;
  firstLine: number;
  result: string;
  isDirectory: boolean;
  forWrite: boolean;
  /** Some access came from the traced program itself, not only from programs it ran. */
  byProgram: boolean;
  /** The next record whose path has the same sampled hash. */
  next: Rec | undefined;
}

const PSEUDO = ['/proc', '/sys', '/dev'];
function isPseudo(s: string, a = 0, b = s.length): boolean {
  if (s.charCodeAt(a + 1) > 115 || s.charCodeAt(a + 1) < 100) return false; // not d, p or s
  for (const root of PSEUDO) {
    const end = a + root.length;
    if (s.startsWith(root, a) && (b === end || s.charCodeAt(end) === SLASH)) return true;
  }
  return false;
}

/**
 * Relative paths that resolve longer than this are not followed. Linux takes at most 4096 bytes a path, but a
 * directory opened relative to itself again and again (`openat(4, "d", O_DIRECTORY) = 4`, or `chdir("d")`)
 * grows the tracked one by each line, and each line then cost the whole length: 150 KB of such lines took
 * 2 s (found by the fuzzer).
 */
const MAX_RESOLVED_PATH = 16 * 1024;

const NEEDS_NORMALISE = /\/\/|\/\.\.?(\/|$)|.\/$/;
function normalise(path: string): string {
  if (!NEEDS_NORMALISE.test(path)) return path;
  const out = posix.normalize(path);
  return out.length > 1 && out.endsWith('/') ? out.slice(0, -1) : out;
}

/** True when the char at e is escaped by an odd run of backslashes. */
function escapedAt(s: string, e: number): boolean {
  let k = e - 1;
  while (s.charCodeAt(k) === BSLASH) k--;
  return ((e - 1 - k) & 1) === 1;
}

/** indexOf bounded to s[a, b): a plain indexOf would run on through the whole chunk. */
function find(s: string, needle: string, a: number, b: number): number {
  const c0 = needle.charCodeAt(0);
  const last = b - needle.length;
  for (let i = a; i <= last; i++) {
    if (s.charCodeAt(i) === c0 && (needle.length === 1 || s.startsWith(needle, i))) return i;
  }
  return -1;
}

/** s.indexOf(needle, from), or s.length when it is not there. */
function indexOrEnd(s: string, needle: string, from: number): number {
  const i = s.indexOf(needle, from);
  return i === -1 ? s.length : i;
}

/** Copy a string so a map key does not keep a whole multi-megabyte chunk alive. */
function detach(s: string): string {
  return s.length < 13 ? s : ` ${s}`.slice(1);
}

/**
 * A hash of s[a, b) from its length and a few of its chars (the last ones, where
 * paths differ most, and some spread over it): far cheaper than hashing every
 * char, in JS or natively, and collisions are settled by comparing the strings.
 */
function sampleHash(s: string, a: number, b: number): number {
  const len = b - a;
  let h = len;
  const last = len < 12 ? a : b - 12;
  for (let i = b - 1; i >= last; i--) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  if (len > 12) {
    const step = (len >> 3) + 1;
    for (let i = a + (step >> 1); i < b - 12; i += step) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  }
  return h;
}

/** A flat copy of s, so a kept path pins no chunk and compares fast. */
function flatCopy(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8');
}

/**
 * Records by path, looked up from a range of the chunk: a sampled hash picks the
 * candidates, a string compare of a (cheap, uncopied) slice settles which.
 */
class PathIndex {
  private readonly byHash = new Map<number, Rec>();
  readonly all: Rec[] = [];
  /** Set by get: the sampled hash and the slice it compared, for add. */
  hash = 0;
  key = '';

  get(s: string, a: number, b: number): Rec | undefined {
    // Kept within 30 bits: a small-integer key, which a Map hashes far faster than a heap number.
    const h = sampleHash(s, a, b) & 0x3fffffff;
    this.hash = h;
    let rec = this.byHash.get(h);
    const key = s.slice(a, b);
    this.key = key;
    while (rec !== undefined) {
      if (rec.path === key) return rec;
      rec = rec.next;
    }
    return undefined;
  }

  /** Add rec, whose path is `key` from the get that missed it. */
  add(rec: Rec): void {
    rec.next = this.byHash.get(this.hash);
    this.byHash.set(this.hash, rec);
    this.all.push(rec);
  }
}

/**
 * The line-level state machine. One instance per parse: all per-run state lives here.
 */
class LogParser {
  private readonly opts: ParseStraceOptions;
  private readonly samplesMax: number;
  private lineNo = 0;
  private bytes = 0;
  private syscallLines = 0;
  private pseudoDropped = 0;
  private firstPid: number | undefined;
  private readonly pids = new Set<number>();
  private readonly procs = new Map<number, Proc>();
  /** Pids with an unfinished fork-family call: a new pid most likely is the child of the last one. */
  private readonly pendingForks: number[] = [];
  /** The pid that appeared while a process's fork was unfinished: its child, whatever number the call returns. */
  private readonly earlyChild = new Map<number, number>();
  /**
   * Children of forks that returned and whose pid no line has shown yet, the latest last. Inside a pid namespace
   * (a sandbox) a fork returns the namespace's number while the log shows the host's: a new pid that no
   * unfinished fork explains is taken for the latest of these.
   */
  private readonly unclaimed: number[] = [];
  private readonly opened = new PathIndex();
  private readonly missing = new PathIndex();
  private readonly execs = new PathIndex();
  private readonly listed = new PathIndex();
  private readonly written = new Set<string>();
  /** The process whose exec was the traced program's own, once seen. */
  private rootPid: number | undefined;
  /** Spawns by call, program and parent. */
  private readonly spawns = new Map<string, TraceSpawn>();
  /** Processes the program forked, by pid, and the pids that executed a program. */
  private readonly forks = new Map<number, Fork>();
  private readonly execd = new Set<number>();
  /** The last program each process of the program tried to run in vain. */
  private readonly tried = new Map<number, string>();
  /** Whether the call being recorded comes from a helper (see Proc.helper). */
  private curHelper = false;
  private readonly warnings = new Map<TraceWarning['kind'], TraceWarning>();
  defaultPid = 0;
  private readonly names: ({ name: string; spec: Spec | undefined } | undefined)[] = new Array(2048);
  private skipping = false;
  /** The last pid looked up and its state (reset when a process exits). */
  private lastPid = -1;
  private lastProc: Proc | undefined;

  // Argument ranges of the call being parsed: [start, end) per argument.
  private readonly argStart = new Int32Array(8);
  private readonly argEnd = new Int32Array(8);
  private argCount = 0;
  // The parsed result of the call being parsed.
  private resOk = false;
  private resValue = 0;
  private resErrStart = 0;
  private resErrEnd = 0;
  private resDecoStart = -1;
  // Set by decodeString when the string ended with `...` (cut by -s).
  private truncated = false;
  /** True while the path being recorded is a raw slice of the line, not yet checked for `//`, `.`, `..`. */
  private rawKey = false;
  // The content range of the last decoded string, and whether it needed no decoding.
  private strA = 0;
  private strB = 0;
  private strPlain = true;
  /** Position of the `)` that closes the arguments, set by args(). */
  private resPos = 0;
  /** Where readInt stopped. */
  private intEnd = 0;

  constructor(opts: ParseStraceOptions) {
    this.opts = opts;
    this.samplesMax = opts.warningSamples ?? 5;
  }

  warn(kind: TraceWarning['kind'], message: string, text: string): void {
    let w = this.warnings.get(kind);
    if (!w) {
      w = { kind, message, count: 0, samples: [] };
      this.warnings.set(kind, w);
    }
    w.count++;
    if (w.samples.length < this.samplesMax) {
      const clean = text.length > 200 ? `${text.slice(0, 200)}...` : text;
      w.samples.push({ line: this.lineNo, text: detach(clean) });
    }
  }

  /**
   * Feed a chunk of log text (latin1; `ascii` when no char is above 127); returns where its
   * unterminated tail starts (s.length when none), to prepend to the next chunk.
   */
  feed(s: string, final: boolean, ascii = false): number {
    this.chunk = s;
    this.chunkAscii = ascii;
    this.lastFrom = 0;
    this.nextBs = -1;
    let pos = 0;
    const n = s.length;
    if (this.skipping) {
      // The rest of an over-long line.
      const nl = s.indexOf('\n');
      if (nl === -1) return n;
      this.skipping = false;
      pos = nl + 1;
    }
    while (pos < n) {
      const nl = s.indexOf('\n', pos);
      if (nl === -1) break;
      let end = nl;
      if (end > pos && s.charCodeAt(end - 1) === CR) end--;
      this.line(s, pos, end);
      pos = nl + 1;
    }
    if (pos >= n) return n;
    if (final) {
      const garbled = this.warnings.get('garbled-line')?.count ?? 0;
      this.line(s, pos, n);
      // A last line without a newline that did not parse was cut off mid-write.
      const g = this.warnings.get('garbled-line');
      if (g && g.count > garbled) {
        g.count--;
        if (g.samples.at(-1)?.line === this.lineNo) g.samples.pop();
        if (g.count === 0) this.warnings.delete('garbled-line');
        this.warn('cut-off-at-end', 'the log ends in the middle of a line', s.slice(pos, n));
      }
      return n;
    }
    if (n - pos > MAX_LINE) {
      this.lineNo++;
      this.skipping = true;
      this.warn('line-too-long', `a line longer than ${MAX_LINE} bytes was skipped`, s.slice(pos, pos + 200));
      return n;
    }
    return pos;
  }

  addBytes(n: number): void {
    this.bytes += n;
  }

  private proc(pid: number): Proc {
    if (pid === this.lastPid) return this.lastProc!;
    let p = this.procs.get(pid);
    if (p) {
      this.lastPid = pid;
      this.lastProc = p;
      if (this.unclaimed.length > 0) {
        const i = this.unclaimed.lastIndexOf(pid);
        if (i !== -1) this.unclaimed.splice(i, 1);
      }
      return p;
    }
    if (this.firstPid === undefined) {
      this.firstPid = pid;
      p = {
        fs: { cwd: this.opts.cwd },
        files: new Map(),
        partial: undefined,
        partialLine: 0,
        image: undefined,
        helper: false,
      };
    } else {
      const parentPid = this.pendingForks.at(-1);
      const parent = parentPid === undefined ? undefined : this.procs.get(parentPid);
      const claimed = parent ? undefined : this.claimUnclaimed(pid);
      if (parent) {
        p = this.inherit(parent, parent.partial ?? '', 0, (parent.partial ?? '').length);
        if (!this.earlyChild.has(parentPid!)) this.earlyChild.set(parentPid!, pid);
      } else if (claimed) {
        p = claimed;
      } else {
        p = {
          fs: { cwd: undefined },
          files: new Map(),
          partial: undefined,
          partialLine: 0,
          image: undefined,
          helper: false,
        };
      }
    }
    this.procs.set(pid, p);
    this.pids.add(pid);
    return p;
  }

  /** The state made for the latest fork's child not yet seen, moved to `pid` (see `unclaimed`). */
  private claimUnclaimed(pid: number): Proc | undefined {
    const child = this.unclaimed.pop();
    if (child === undefined) return undefined;
    const p = this.procs.get(child);
    this.procs.delete(child);
    this.pids.delete(child);
    const fork = this.forks.get(child);
    if (fork) {
      this.forks.delete(child);
      this.forks.set(pid, fork);
    }
    return p;
  }

  private inherit(parent: Proc, s: string, a: number, b: number): Proc {
    const flags = s.slice(a, b);
    const shareFs = flags.includes('CLONE_FS');
    const shareFiles = flags.includes('CLONE_FILES');
    return {
      fs: shareFs ? parent.fs : { cwd: parent.fs.cwd },
      files: shareFiles ? parent.files : new Map(parent.files),
      partial: undefined,
      partialLine: 0,
      image: parent.image,
      helper: parent.helper,
    };
  }

  /** Decimal digits from s[q]; sets intEnd. */
  private readInt(s: string, q: number): number {
    let v = 0;
    let c = s.charCodeAt(q);
    while (isDigit(c)) {
      v = v * 10 + c - D0;
      c = s.charCodeAt(++q);
    }
    this.intEnd = q;
    return v;
  }

  /** One line, s[a, b). */
  private line(s: string, a: number, b: number): void {
    this.lineNo++;
    let p = a;
    let pid = this.defaultPid;
    let c = s.charCodeAt(p);
    // `[pid N] ` (strace -f to stderr) or `[N] ` (Nanos trace).
    if (c === LBRACK) {
      let q = p + 1;
      if (s.startsWith('pid ', q)) q += 4;
      while (s.charCodeAt(q) === SP) q++;
      if (isDigit(s.charCodeAt(q))) {
        const v = this.readInt(s, q);
        q = this.intEnd;
        while (q < b && s.charCodeAt(q) !== RBRACK) q++; // `-Y` adds `<comm>`
        if (q < b) {
          pid = v;
          p = q + 1;
          while (s.charCodeAt(p) === SP) p++;
        }
      }
    } else if (isDigit(c)) {
      // `PID ` (strace -f -o FILE); digits followed by `:` or `.` are a timestamp instead.
      let q = p;
      const v = this.readInt(s, q);
      q = this.intEnd;
      if (s.charCodeAt(q) === SP) {
        pid = v;
        p = q;
        while (s.charCodeAt(p) === SP) p++;
      }
    }
    // Timestamps: -t `12:34:56`, -tt `12:34:56.123456`, -ttt `1700000000.123456`, -r `     0.000123`.
    while (s.charCodeAt(p) === SP) p++;
    c = s.charCodeAt(p);
    if (isDigit(c)) {
      let q = p;
      for (c = s.charCodeAt(q); isDigit(c) || c === COLON || c === DOT; c = s.charCodeAt(++q)) {}
      if (c === SP && q > p) {
        p = q;
        while (s.charCodeAt(p) === SP) p++;
      }
      c = s.charCodeAt(p);
    }
    // -i: `[00007f0123456789] `
    if (c === LBRACK) {
      const close = find(s, '] ', p, Math.min(b, p + 24));
      if (close !== -1 && close < b && close - p <= 20) {
        p = close + 2;
        c = s.charCodeAt(p);
      }
    }
    if (p >= b) return; // blank line
    if (c === PLUS && s.startsWith('+++ ', p)) {
      // `+++ exited with 0 +++`, `+++ killed by SIGKILL +++`: the pid's state goes.
      this.pids.add(pid);
      this.procs.delete(pid);
      this.lastPid = -1;
      return;
    }
    if (c === MINUS && s.startsWith('--- ', p)) return; // signal delivery
    if (c === LT) {
      if (!s.startsWith('<... ', p)) {
        this.warn('garbled-line', 'lines that are not strace output were skipped', s.slice(a, b));
        return;
      }
      const r = find(s, RESUMED, p, b);
      if (r === -1) {
        this.warn('garbled-line', 'lines that are not strace output were skipped', s.slice(a, b));
        return;
      }
      this.syscallLines++;
      const proc = this.proc(pid);
      const partial = proc.partial;
      if (partial === undefined) {
        this.warn('orphan-resume', 'a call resumed that never started in this log', s.slice(a, b));
        return;
      }
      proc.partial = undefined;
      const name = s.slice(p + 5, r);
      if (!partial.startsWith(name)) {
        this.warn('orphan-resume', 'a call resumed that never started in this log', s.slice(a, b));
        return;
      }
      if (SYSCALLS.get(name)?.kind === Kind.Fork) this.dropPendingFork(pid);
      const whole = partial + s.slice(r + RESUMED.length, b);
      this.call(whole, 0, whole.length, pid, proc.partialLine, name.length);
      return;
    }
    // `name(`
    let q = p;
    while (q < b && isNameChar(s.charCodeAt(q))) q++;
    if (q === p || s.charCodeAt(q) !== LPAREN) {
      if (s.startsWith('strace: ', p)) {
        this.warn('strace-message', 'strace printed messages into the log', s.slice(a, b));
      } else if (c === QMARK && s.startsWith('????(', p)) {
        this.syscallLines++;
      } else {
        this.warn('garbled-line', 'lines that are not strace output were skipped', s.slice(a, b));
      }
      return;
    }
    this.syscallLines++;
    if (b - p > UNFINISHED.length && s.endsWith(UNFINISHED, b)) {
      const proc = this.proc(pid);
      const name = s.slice(p, q);
      const sp = SYSCALLS.get(name);
      if (proc.partial !== undefined) this.neverResumed(proc);
      if (sp === undefined) {
        // Keep only the name: the rest is not needed to match the resume.
        proc.partial = detach(name);
      } else {
        proc.partial = detach(s.slice(p, b - UNFINISHED.length));
        if (sp.kind === Kind.Fork) this.pendingForks.push(pid);
      }
      proc.partialLine = this.lineNo;
      return;
    }
    this.call(s, p, b, pid, this.lineNo, q - p);
  }

  private neverResumed(proc: Proc): void {
    const text = proc.partial ?? '';
    const name = text.slice(0, text.indexOf('('));
    if (text.includes('(') && SYSCALLS.has(name)) {
      this.warn('never-resumed', 'calls that never finished in the log were skipped', text);
    }
    proc.partial = undefined;
  }

  private dropPendingFork(pid: number): void {
    const i = this.pendingForks.lastIndexOf(pid);
    if (i !== -1) this.pendingForks.splice(i, 1);
  }

  /** A complete call: s[p, b) starts at the syscall name, `nameLen` long. */
  private call(s: string, p: number, b: number, pid: number, lineNo: number, nameLen: number): void {
    if (nameLen > 12) return; // longer than any name we track
    // Names repeat: look them up by (first char, length) and compare in place, without a slice.
    const slot = ((s.charCodeAt(p) & 127) << 4) | nameLen;
    let entry = this.names[slot];
    if (entry === undefined || !s.startsWith(entry.name, p)) {
      const n = s.slice(p, p + nameLen);
      entry = { name: n, spec: SYSCALLS.get(n) };
      this.names[slot] = entry;
    }
    const name = entry.name;
    const sp = entry.spec;
    if (sp === undefined) {
      this.proc(pid);
      return;
    }
    const proc = this.proc(pid);
    this.curHelper = proc.helper;
    if (!this.args(s, p + nameLen + 1, b) || !this.result(s, b)) {
      this.warn('garbled-line', 'lines that are not strace output were skipped', s.slice(p, b));
      return;
    }
    switch (sp.kind) {
      case Kind.Fork: {
        const early = this.earlyChild.get(pid);
        this.earlyChild.delete(pid);
        if (!this.resOk || this.resValue <= 0) return;
        // The child as the log's lines name it: the pid that appeared while the call was unfinished, else the
        // number returned (inside a pid namespace the namespace's, not the log's: see `unclaimed`).
        const child = early ?? this.resValue;
        const existing = this.procs.get(child);
        const flagsEnd = this.argCount > 0 ? this.argEnd[this.argCount - 1]! : p;
        if (existing) {
          if (existing.fs.cwd === undefined) existing.fs.cwd = proc.fs.cwd;
        } else {
          this.procs.set(child, this.inherit(proc, s, p, flagsEnd));
          this.pids.add(child);
          this.unclaimed.push(child);
          if (this.unclaimed.length > MAX_UNCLAIMED) this.unclaimed.shift();
        }
        this.noteFork(proc, name, child, s.slice(p, flagsEnd), lineNo);
        return;
      }
      case Kind.List: {
        if (!this.resOk || this.argCount < 1) return;
        const dir = this.fdPath(s, this.argStart[0]!, this.argEnd[0]!, proc);
        if (dir === undefined) return;
        this.rawKey = false;
        this.record(this.listed, dir, 0, dir.length, name, pid, lineNo, s, true);
        return;
      }
      case Kind.Fchdir: {
        if (!this.resOk || this.argCount < 1) return;
        const dir = this.fdPath(s, this.argStart[0]!, this.argEnd[0]!, proc);
        if (dir !== undefined && dir !== proc.fs.cwd) proc.fs.cwd = detach(dir);
        return;
      }
      default:
        break;
    }
    if (sp.path >= this.argCount) {
      this.warn('garbled-line', 'lines that are not strace output were skipped', s.slice(p, b));
      return;
    }
    const ps = this.argStart[sp.path]!;
    if (s.charCodeAt(ps) !== QUOTE) return; // a NULL or an address: nothing to name
    this.decodeString(s, ps, this.argEnd[sp.path]!);
    if (this.truncated) {
      this.warn('truncated-string', 'paths cut by strace -s were skipped (raise -s)', s.slice(p, b));
      return;
    }
    // The path as a range of a string: of the line itself in the common case (absolute, plain).
    let ks = s;
    let ka = this.strA;
    let kb = this.strB;
    if (kb === ka) return; // AT_EMPTY_PATH: the fd was recorded when it was opened
    this.rawKey = false;
    if (s.charCodeAt(ka) !== SLASH || !this.strPlain) {
      const raw = this.strPlain ? s.slice(ka, kb) : unescapeC(s, ka, kb);
      let path: string;
      if (raw.charCodeAt(0) === SLASH) {
        path = normalise(raw);
      } else {
        let base: string | undefined;
        if (sp.dirfd === -1) base = proc.fs.cwd;
        else base = this.dirfdPath(s, this.argStart[sp.dirfd]!, this.argEnd[sp.dirfd]!, proc);
        if (base === undefined) {
          this.warn(
            'unresolved-relative-path',
            'relative paths whose directory is unknown were skipped (pass the initial cwd, or trace with -y)',
            s.slice(p, b),
          );
          return;
        }
        // Without a `..` nothing shortens it: too long before normalising is too long after, and cheaper to tell.
        const tooLong = base.length + raw.length >= MAX_RESOLVED_PATH && !raw.includes('..');
        path = tooLong ? '' : normalise(base === '/' ? `/${raw}` : `${base}/${raw}`);
        if (tooLong || path.length > MAX_RESOLVED_PATH) {
          this.warn(
            'path-too-long',
            `paths resolved to more than ${MAX_RESOLVED_PATH} characters (relative opens or chdirs nesting ever deeper) were skipped`,
            s.slice(p, b),
          );
          return;
        }
      }
      ks = path;
      ka = 0;
      kb = path.length;
    } else {
      // Index keys are normal: a raw path found in them is normal too, so record() normalises only misses.
      this.rawKey = true;
    }

    if (!this.resOk) {
      // The child's calls may come before its fork returns in the parent: kept by pid.
      if (sp.kind === Kind.Exec && proc.image !== undefined)
        this.tried.set(pid, detach(this.keyText(ks, ka, kb)));
      if (this.errnoIs(s, 'ENOENT') || this.errnoIs(s, 'ENOTDIR')) {
        this.record(this.missing, ks, ka, kb, name, pid, lineNo, s, false);
      }
      return;
    }
    switch (sp.kind) {
      case Kind.Open:
      case Kind.OpenAt2: {
        const fi = sp.flags;
        let write = 0;
        let isDir = false;
        if (fi < this.argCount) {
          const f = this.openFlags(s, this.argStart[fi]!, this.argEnd[fi]!);
          write = f & 3;
          isDir = (f & 4) !== 0;
        }
        if (this.resDecoStart === -1 && this.resValue >= 0)
          proc.files.set(this.resValue, detach(this.keyText(ks, ka, kb)));
        if (write === 2) {
          this.addWritten(this.keyText(ks, ka, kb));
          return;
        }
        const rec = this.record(this.opened, ks, ka, kb, name, pid, lineNo, s, isDir);
        if (rec && write === 1) {
          rec.forWrite = true;
          this.addWritten(this.keyText(ks, ka, kb));
        }
        return;
      }
      case Kind.Creat:
      case Kind.WriteDest:
        this.addWritten(this.keyText(ks, ka, kb));
        return;
      case Kind.Exec: {
        const argv = sp.path + 1 < this.argCount ? this.argvAt(s, sp.path + 1) : undefined;
        this.noteExec(proc, pid, name, this.keyText(ks, ka, kb), argv, lineNo);
        this.record(this.opened, ks, ka, kb, name, pid, lineNo, s, false);
        this.record(this.execs, ks, ka, kb, name, pid, lineNo, s, false);
        return;
      }
      case Kind.Chdir: {
        const dir = this.keyText(ks, ka, kb);
        if (proc.fs.cwd !== dir) proc.fs.cwd = detach(dir);
        this.record(this.opened, ks, ka, kb, name, pid, lineNo, s, true);
        return;
      }
      case Kind.Probe: {
        let isDir = false;
        if (name.includes('stat')) {
          isDir = find(s, 'S_IFDIR', ps, b) !== -1;
        }
        this.record(this.opened, ks, ka, kb, name, pid, lineNo, s, isDir);
        return;
      }
      default:
        return;
    }
  }

  /**
   * A successful exec by `proc`: the traced program's own (the first, or the one `program` names), or a program
   * it runs. A process that runs another program in a child becomes a helper, with what it starts; the program
   * replacing itself in its own process stays the program.
   */
  private noteExec(
    proc: Proc,
    pid: number,
    syscall: string,
    path: string,
    argv: string[] | undefined,
    lineNo: number,
  ): void {
    this.execd.add(pid);
    if (this.rootPid === undefined) {
      // Before the program: a sandbox or a wrapper that starts it.
      if (this.opts.program !== undefined && path !== this.opts.program) return;
      this.rootPid = pid;
      proc.image = detach(path);
      return;
    }
    // A process outside the program's tree (the sandbox's own).
    if (proc.image === undefined) return;
    // A re-exec through /proc/self/exe runs the same program again.
    const program = SELF_EXE.test(path) ? proc.image : detach(path);
    this.addSpawn(syscall, program, argv, proc.image, pid, lineNo);
    proc.image = program;
    if (pid !== this.rootPid) proc.helper = true;
    this.curHelper = proc.helper;
  }

  /** A process the program created: kept when it is no thread, to report at the end if it ran nothing else. */
  private noteFork(parent: Proc, syscall: string, child: number, flags: string, lineNo: number): void {
    if (parent.image === undefined || parent.helper) return;
    const forks = syscall === 'fork' || syscall === 'vfork';
    // Raw numeric flags (strace -X raw) cannot be told from a thread's without decoding: not counted.
    if (!forks && !flags.includes('CLONE_') && !flags.includes('SIGCHLD')) return;
    if (flags.includes('CLONE_THREAD')) return;
    const sharesMemory = syscall === 'vfork' || flags.includes('CLONE_VM');
    this.forks.set(child, { syscall, parent: parent.image, line: lineNo, sharesMemory });
  }

  private addSpawn(
    syscall: string,
    path: string,
    argv: string[] | undefined,
    parent: string,
    pid: number,
    line: number,
    tried?: string,
  ): void {
    const key = `${syscall}\0${path}\0${parent}\0${tried ?? ''}`;
    const known = this.spawns.get(key);
    if (known) {
      known.count++;
      return;
    }
    this.spawns.set(key, {
      syscall,
      path: detach(path),
      ...(argv ? { argv } : {}),
      parent,
      pid,
      line,
      count: 1,
      ...(tried ? { tried } : {}),
    });
  }

  /** The strings of the array argument `index` (execve's argv); undefined when it is no array of strings. */
  private argvAt(s: string, index: number): string[] | undefined {
    const a = this.argStart[index]!;
    const b = this.argEnd[index]!;
    if (s.charCodeAt(a) !== LBRACK) return undefined;
    const out: string[] = [];
    let q = a + 1;
    while (q < b && out.length < MAX_ARGV) {
      const open = s.indexOf('"', q);
      if (open === -1 || open >= b) break;
      let close = s.indexOf('"', open + 1);
      while (close !== -1 && close < b && escapedAt(s, close)) close = s.indexOf('"', close + 1);
      if (close === -1 || close >= b) break;
      const value = this.isPlain(s, open + 1, close)
        ? s.slice(open + 1, close)
        : unescapeC(s, open + 1, close);
      q = close + 1;
      // A string cut by -s: `"abc"...`.
      const cut = s.startsWith('...', q);
      if (cut) q += 3;
      out.push(flatCopy(cut ? `${value}...` : value));
    }
    return out;
  }

  /** The path s[a, b) as a string, normalised if it is a raw slice. */
  private keyText(s: string, a: number, b: number): string {
    const raw = s.slice(a, b);
    return this.rawKey ? normalise(raw) : raw;
  }

  private addWritten(path: string): void {
    if (!this.opts.keepPseudo && isPseudo(path)) {
      this.pseudoDropped++;
      return;
    }
    if (!this.written.has(path)) this.written.add(detach(path));
  }

  /** Count an access to the path s[a, b). */
  private record(
    map: PathIndex,
    s: string,
    a: number,
    b: number,
    syscall: string,
    pid: number,
    lineNo: number,
    line: string,
    isDir: boolean,
  ): Rec | undefined {
    if (!this.opts.keepPseudo && isPseudo(s, a, b)) {
      // `/proc/../etc/x` is no pseudo path: normalise before dropping.
      if (this.rawKey) return this.recordNormalised(map, s.slice(a, b), syscall, pid, lineNo, line, isDir);
      this.pseudoDropped++;
      return undefined;
    }
    let rec = map.get(s, a, b);
    if (rec === undefined) {
      if (this.rawKey) return this.recordNormalised(map, map.key, syscall, pid, lineNo, line, isDir);
      const path = flatCopy(map.key);
      // A file the program wrote first is its own output, not a dependency.
      if (map === this.opened && this.written.has(path)) return undefined;
      rec = {
        path,
        syscall,
        pids: [pid],
        count: 1,
        firstLine: lineNo,
        result: this.resultText(line),
        isDirectory: isDir,
        forWrite: false,
        byProgram: !this.curHelper,
        next: undefined,
      };
      map.add(rec);
      return rec;
    }
    rec.count++;
    if (isDir) rec.isDirectory = true;
    if (!this.curHelper) rec.byProgram = true;
    const pids = rec.pids;
    if (pids.length < MAX_PIDS_KEPT && pids[pids.length - 1] !== pid && !pids.includes(pid)) pids.push(pid);
    return rec;
  }

  /** record() for a raw path not found as it is: normalise it, then look again. */
  private recordNormalised(
    map: PathIndex,
    raw: string,
    syscall: string,
    pid: number,
    lineNo: number,
    line: string,
    isDir: boolean,
  ): Rec | undefined {
    this.rawKey = false;
    const path = normalise(raw);
    const out = this.record(map, path, 0, path.length, syscall, pid, lineNo, line, isDir);
    this.rawKey = true;
    return out;
  }

  private resultText(s: string): string {
    if (!this.resOk) return s.slice(this.resErrStart, this.resErrEnd);
    return String(this.resValue);
  }

  private errnoIs(s: string, name: string): boolean {
    return this.resErrEnd - this.resErrStart === name.length && s.startsWith(name, this.resErrStart);
  }

  /** Bits: 1 = must exist and is written, 2 = created/truncated (an output), 4 = directory. */
  private openFlags(s: string, a: number, b: number): number {
    let c = s.charCodeAt(a);
    if (c === LBRACE) {
      // openat2 `{flags=O_RDONLY|O_CLOEXEC, ...}`
      a++;
      if (s.startsWith('flags=', a)) a += 6;
      c = s.charCodeAt(a);
    }
    if (isDigit(c)) {
      // -X raw or Nanos: numbers (x86_64/aarch64 generic values).
      let end = a;
      while (end < b && s.charCodeAt(end) !== COMMA && s.charCodeAt(end) !== RBRACE) end++;
      const v = Number(s.slice(a, end));
      if (!Number.isFinite(v)) return 0;
      let out = 0;
      if (v & 0o1100) out |= 2;
      else if (v & 3) out |= 1;
      if (v & 0o200000 && !(v & 0o20000000)) out |= 4;
      return out;
    }
    let end = find(s, ',', a, b);
    if (end === -1) end = b;
    // One pass over the `|`-separated names, told apart by their third letter.
    let create = false;
    let write = false;
    let dir = false;
    let tmp = false;
    let i = a;
    while (i < end) {
      let j = i;
      while (j < end && s.charCodeAt(j) !== PIPE) j++;
      const len = j - i;
      switch (s.charCodeAt(i + 2)) {
        case 67: // C
          if (len === 7 && s.startsWith('O_CREAT', i)) create = true;
          break;
        case 84: // T
          if (len === 7 && s.startsWith('O_TRUNC', i)) create = true;
          else if (s.startsWith('O_TMPFILE', i)) tmp = true;
          break;
        case 87: // W
          if (s.startsWith('O_WRONLY', i)) write = true;
          break;
        case 82: // R
          if (len === 6 && s.startsWith('O_RDWR', i)) write = true;
          break;
        case 68: // D
          if (s.startsWith('O_DIRECTORY', i)) dir = true;
          break;
        default:
          break;
      }
      i = j + 1;
    }
    let out = 0;
    if (create || tmp) out |= 2;
    else if (write) out |= 1;
    if (dir && !tmp) out |= 4;
    return out;
  }

  /** The directory a dirfd argument stands for: its `-y` decoration, the cwd, or the fd table. */
  private dirfdPath(s: string, a: number, b: number, proc: Proc): string | undefined {
    if (s.startsWith('AT_FDCWD', a) || s.startsWith('-100', a)) {
      const deco = find(s, '<', a, b);
      if (deco !== -1) {
        const dir = this.decodeDecoration(s, deco, b);
        // A free correction of our cwd tracking (copied: a slice would pin the whole chunk).
        if (dir !== proc.fs.cwd) proc.fs.cwd = detach(dir);
        return dir;
      }
      return proc.fs.cwd;
    }
    return this.fdPath(s, a, b, proc);
  }

  private fdPath(s: string, a: number, b: number, proc: Proc): string | undefined {
    let q = a;
    const v = this.readInt(s, q);
    q = this.intEnd;
    if (q === a) return undefined;
    if (s.charCodeAt(q) === LT) return this.decodeDecoration(s, q, b);
    return proc.files.get(v);
  }

  /** `<path>` with strace's escapes (`\76` for `>`). */
  private decodeDecoration(s: string, lt: number, b: number): string {
    let q = lt + 1;
    let plain = true;
    while (q < b) {
      const c = s.charCodeAt(q);
      if (c === GT) break;
      if (c === BSLASH) {
        plain = false;
        q += 2;
        continue;
      }
      if (c > 126) plain = false;
      q++;
    }
    const raw = plain ? s.slice(lt + 1, q) : unescapeC(s, lt + 1, q);
    return normalise(raw);
  }

  // The chunk being fed, whether it is all ASCII, and its next backslash at or after the last
  // position asked about. Lines are walked in order, so finding escapes costs one native
  // indexOf scan per chunk instead of a JS loop over every path.
  private chunk = '';
  private chunkAscii = false;
  private lastFrom = 0;
  private nextBs = -1;

  /** True when s[from, to) holds no backslash and no non-ASCII char: the path needs no decoding. */
  private isPlain(s: string, from: number, to: number): boolean {
    if (s !== this.chunk || from < this.lastFrom) {
      // A resumed call glued together, or a step back: plain loop.
      for (let i = from; i < to; i++) {
        const c = s.charCodeAt(i);
        if (c === BSLASH || c > 127) return false;
      }
      return true;
    }
    this.lastFrom = from;
    if (this.nextBs < from) this.nextBs = indexOrEnd(s, '\\', from);
    if (this.nextBs < to) return false;
    if (!this.chunkAscii) {
      for (let i = from; i < to; i++) if (s.charCodeAt(i) > 127) return false;
    }
    return true;
  }

  /** A quoted string argument at s[a] = '"', ending before b; sets `truncated`. */
  private decodeString(s: string, a: number, b: number): void {
    // The arg ends with the closing quote, or with `"...` when strace cut the string.
    let q = b;
    this.truncated = false;
    if (s.charCodeAt(q - 1) === DOT && s.startsWith('"...', q - 4) && q - 4 > a) {
      this.truncated = true;
      q -= 4;
    } else {
      q--;
    }
    if (q <= a || s.charCodeAt(q) !== QUOTE) {
      this.truncated = true;
      return;
    }
    // Whether it needs normalising (`//`, `/.`, a trailing `/`) is checked only for paths not seen yet.
    this.strA = a + 1;
    this.strB = q;
    this.strPlain = this.isPlain(s, a + 1, q);
  }

  /**
   * Split the arguments of a call starting after its `(`; fills argStart/argEnd and
   * leaves `resPos` at the `)` that closes them. False when the line ends first.
   */
  private args(s: string, a: number, b: number): boolean {
    let q = a;
    let n = 0;
    this.argCount = 0;
    if (s.charCodeAt(q) === RPAREN) {
      this.resPos = q;
      return true;
    }
    for (;;) {
      while (s.charCodeAt(q) === SP) q++;
      const start = q;
      let depth = 0;
      for (;;) {
        if (q >= b) return false;
        const c = s.charCodeAt(q);
        if (ARG_SPECIAL[c] === 0) {
          // Most chars (names, flags, numbers) only move on: one table look-up, not eight compares.
          q++;
          continue;
        }
        if (c === QUOTE) {
          // indexOf is far faster than a char loop; a quote preceded by an odd run of backslashes is escaped.
          let e = s.indexOf('"', q + 1);
          while (e !== -1 && e < b && escapedAt(s, e)) e = s.indexOf('"', e + 1);
          if (e === -1 || e >= b) return false;
          q = e + 1;
          if (s.startsWith('...', q)) q += 3;
          continue;
        }
        if (c === LT) {
          // `-y` decoration; strace writes `>` inside it as `\76`
          const e = s.indexOf('>', q + 1);
          if (e === -1 || e >= b) return false;
          q = e + 1;
          continue;
        }
        if (c === LBRACE || c === LBRACK || c === LPAREN) depth++;
        else if (c === RBRACE || c === RBRACK) depth--;
        else if (c === RPAREN) {
          if (depth === 0) break;
          depth--;
        } else if (c === COMMA && depth === 0) break;
        q++;
      }
      if (n < 8) {
        this.argStart[n] = start;
        this.argEnd[n] = q;
        n++;
      }
      if (s.charCodeAt(q) === RPAREN) {
        this.argCount = n;
        this.resPos = q;
        return true;
      }
      q++; // the comma
    }
  }

  /** Parse ` = RESULT` after the closing paren. */
  private result(s: string, b: number): boolean {
    let q = this.resPos + 1;
    while (s.charCodeAt(q) === SP) q++;
    if (s.charCodeAt(q) !== EQ || q + 2 > b) return false;
    q += 2;
    this.resDecoStart = -1;
    let c = s.charCodeAt(q);
    if (c === MINUS) {
      q++;
      c = s.charCodeAt(q);
      if (isDigit(c)) {
        while (isDigit(s.charCodeAt(q))) q++;
        q++; // space before the errno name
      }
      const e = q;
      while (q < b && s.charCodeAt(q) !== SP) q++;
      if (q === e) return false;
      this.resOk = false;
      this.resErrStart = e;
      this.resErrEnd = q;
      return true;
    }
    if (c === QMARK) {
      // `= ?`: the process went away inside the call
      this.resOk = false;
      this.resErrStart = q;
      this.resErrEnd = q + 1;
      return true;
    }
    if (!isDigit(c)) return false;
    let v = 0;
    if (c === D0 && s.charCodeAt(q + 1) === 120) {
      // 0x...: an address (mmap-like results); the value is not used
      q += 2;
      while (q < b && s.charCodeAt(q) !== SP && s.charCodeAt(q) !== LT) q++;
      v = 1;
    } else {
      v = this.readInt(s, q);
      q = this.intEnd;
    }
    this.resOk = true;
    this.resValue = v;
    if (s.charCodeAt(q) === LT) {
      this.resDecoStart = q;
    }
    return true;
  }

  finish(): TraceResult {
    for (const proc of this.procs.values()) {
      if (proc.partial !== undefined) this.neverResumed(proc);
    }
    const out = (map: PathIndex): TraceAccess[] =>
      map.all
        .sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0))
        .map((r) => {
          const access: TraceAccess = {
            path: r.path,
            syscall: r.syscall,
            pids: r.pids.sort((x, y) => x - y),
            count: r.count,
            firstLine: r.firstLine,
            result: r.result,
          };
          if (r.isDirectory) access.isDirectory = true;
          if (r.forWrite) access.forWrite = true;
          if (!r.byProgram) access.onlyHelpers = true;
          return access;
        });
    // A copy that ran another program is reported by that exec; one sharing the program's memory only ever does.
    for (const [pid, fork] of this.forks) {
      if (fork.sharesMemory || this.execd.has(pid)) continue;
      this.addSpawn(fork.syscall, fork.parent, undefined, fork.parent, pid, fork.line, this.tried.get(pid));
    }
    return {
      opened: out(this.opened),
      missing: out(this.missing),
      execs: out(this.execs),
      listed: out(this.listed),
      spawns: [...this.spawns.values()].sort((x, y) => x.line - y.line),
      written: [...this.written].sort(),
      warnings: [...this.warnings.values()],
      stats: {
        lines: this.lineNo,
        bytes: this.bytes,
        pids: this.pids.size,
        syscallLines: this.syscallLines,
        pseudoDropped: this.pseudoDropped,
      },
    };
  }
}

/** Decode strace's C-style escapes in s[a, b) into the bytes they stand for, read as UTF-8. */
function unescapeC(s: string, a: number, b: number): string {
  const bytes = Buffer.allocUnsafe(b - a);
  let n = 0;
  let q = a;
  while (q < b) {
    let c = s.charCodeAt(q++);
    if (c !== BSLASH) {
      bytes[n++] = c & 0xff;
      continue;
    }
    c = s.charCodeAt(q++);
    switch (c) {
      case 110: // n
        bytes[n++] = 10;
        break;
      case 116: // t
        bytes[n++] = 9;
        break;
      case 114: // r
        bytes[n++] = 13;
        break;
      case 118: // v
        bytes[n++] = 11;
        break;
      case 102: // f
        bytes[n++] = 12;
        break;
      case 120: {
        // \xNN
        let v = 0;
        let k = 0;
        while (k < 2 && q < b) {
          const h = hexValue(s.charCodeAt(q));
          if (h < 0) break;
          v = v * 16 + h;
          q++;
          k++;
        }
        bytes[n++] = v;
        break;
      }
      default:
        if (c >= D0 && c <= 55) {
          // \o, \oo, \ooo
          let v = c - D0;
          let k = 1;
          while (k < 3 && q < b) {
            const d = s.charCodeAt(q);
            if (d < D0 || d > 55) break;
            v = v * 8 + d - D0;
            q++;
            k++;
          }
          bytes[n++] = v & 0xff;
        } else {
          bytes[n++] = c & 0xff; // \" \\ and anything else: the char itself
        }
    }
  }
  return bytes.toString('utf8', 0, n);
}

function hexValue(c: number): number {
  if (c >= D0 && c <= D9) return c - D0;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Options for reading -ff logs: the files and the pid each one belongs to. */
interface LogFile {
  /** A FIFO (`--from-log <(strace ...)`): read through the event loop, never with a blocking open. */
  pipe?: boolean;
  path: string;
  pid: number | undefined;
}

const PID_SUFFIX = /\.(\d+)$/;

async function resolveInput(input: string | string[]): Promise<LogFile[]> {
  const list = typeof input === 'string' ? [input] : input;
  if (list.length === 0) {
    throw new UniproveError('E_STRACE_LOG', {
      message: 'no strace log was given',
      hint: 'Pass the file written by `strace -o FILE`, or the FILE prefix of `strace -ff -o FILE`.',
    });
  }
  const files: LogFile[] = [];
  for (const path of list) {
    let st: Awaited<ReturnType<typeof stat>> | undefined;
    try {
      st = await stat(path);
    } catch {
      st = undefined;
    }
    if (st?.isDirectory()) {
      throw new UniproveError('E_IS_DIRECTORY', {
        message: `${path} is a directory, not an strace log`,
        hint: 'Pass the log file, or the FILE prefix given to `strace -ff -o FILE`.',
      });
    }
    if (st && !st.isFile() && !st.isFIFO()) {
      // A device or a socket never ends (/dev/zero) or is no log: refused before it is opened.
      throw notRegularFile(
        st,
        path,
        'strace log',
        'Pass the file written by `strace -o FILE` (a pipe works too: --from-log <(strace ...)).',
      );
    }
    if (st) {
      const m = PID_SUFFIX.exec(basename(path));
      files.push({
        path,
        pid: m && typeof input !== 'string' ? Number(m[1]) : undefined,
        ...(st.isFIFO() ? { pipe: true } : {}),
      });
      continue;
    }
    // Not a file: an `-ff` prefix? Its files are PREFIX.PID.
    const dir = dirname(path);
    const prefix = `${basename(path)}.`;
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch {
      names = [];
    }
    const found = names
      .filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
      .map((n) => ({ path: join(dir, n), pid: Number(n.slice(prefix.length)) }))
      .sort((x, y) => x.pid - y.pid);
    if (found.length === 0) {
      throw new UniproveError('E_NOT_FOUND', {
        message: `strace log ${path} does not exist (nor ${path}.PID files from strace -ff)`,
        hint: 'Check the path given to `strace -o`.',
      });
    }
    files.push(...found);
  }
  return files;
}

/** 64 KiB chunks stay in V8's young generation: faster and far less RSS than 1 MiB ones. */
const CHUNK = 1 << 16;

/**
 * The file's bytes in chunks of one reused buffer (each is consumed before the next read).
 * Reads are synchronous: from the page cache they take microseconds, and an async read
 * per chunk left the parser idle, waiting for the thread pool, for a sixth of its time.
 * The event loop still gets a turn every few megabytes (for aborts and progress).
 */
async function* readChunks(path: string): AsyncGenerator<Buffer> {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let k = 1; ; k++) {
      const n = readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) return;
      yield buf.subarray(0, n);
      if (k % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Parse an strace log, streaming: a file path, a list of files (or an `-ff`
 * prefix: `PREFIX.PID` files), or an async iterable of text chunks.
 */
export async function parseStraceLog(
  input: string | string[] | AsyncIterable<string | Uint8Array>,
  options: ParseStraceOptions = {},
): Promise<TraceResult> {
  if (options.cwd !== undefined && !posix.isAbsolute(options.cwd)) {
    // Paths are resolved against it: a relative one grows with each chdir(".."), and normalising the
    // ever longer "../../.." made 10 000 of them take minutes (found by the fuzzer).
    throw new UniproveError('E_USAGE', {
      message: `the starting folder of a traced program must be an absolute path, got ${JSON.stringify(options.cwd)}`,
      hint: 'Pass the folder the program was started in, as an absolute path.',
    });
  }
  const parser = new LogParser(options);
  const signal = options.signal;
  const name = typeof input === 'string' ? input : Array.isArray(input) ? input.join(', ') : 'the log stream';
  const consume = async (chunks: AsyncIterable<string | Uint8Array>) => {
    // The unterminated tail of the last chunk, as bytes: glued to the next chunk before decoding,
    // so the parser always walks one flat string.
    let carry: Buffer | undefined;
    for await (const chunk of chunks) {
      if (signal?.aborted) {
        throw new UniproveError('E_INTERRUPTED', { message: `parsing ${name} was cancelled` });
      }
      let bytes =
        typeof chunk === 'string'
          ? Buffer.from(chunk, 'latin1')
          : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      parser.addBytes(bytes.length);
      if (carry !== undefined) bytes = Buffer.concat([carry, bytes]);
      const text = bytes.toString('latin1');
      const tail = parser.feed(text, false, isAscii(bytes));
      carry = tail < bytes.length ? Buffer.from(bytes.subarray(tail)) : undefined;
    }
    if (carry !== undefined) parser.feed(carry.toString('latin1'), true, isAscii(carry));
  };
  if (typeof input === 'string' || Array.isArray(input)) {
    const files = await resolveInput(input);
    for (const file of files) {
      parser.defaultPid = file.pid ?? options.pid ?? 0;
      try {
        await consume(file.pipe ? pipeBlocks(file.path, signal) : readChunks(file.path));
      } catch (error) {
        if (error instanceof UniproveError) throw error;
        throw new UniproveError('E_STRACE_LOG', {
          message: `cannot read strace log ${file.path}: ${(error as Error).message}`,
          hint: 'Check that the file exists and is readable.',
          cause: error,
        });
      }
    }
  } else {
    parser.defaultPid = options.pid ?? 0;
    // Strings are taken as UTF-8 text: turn them into latin1 bytes-as-chars like file chunks.
    const asBytes = async function* () {
      for await (const chunk of input) yield typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    };
    await consume(asBytes());
  }
  const result = parser.finish();
  if (result.stats.syscallLines === 0) {
    throw new UniproveError('E_STRACE_LOG', {
      message:
        result.stats.bytes === 0
          ? `${name} is empty: no strace output`
          : `${name} is not an strace log: none of its ${result.stats.lines} lines looks like a system call`,
      hint: 'Capture it with `strace -f -e trace=%file -o FILE PROGRAM` (or let `uniprove discover` run strace).',
      details: { input: name, lines: result.stats.lines, bytes: result.stats.bytes },
    });
  }
  return result;
}

/**
 * File names that were searched for and never found: each basename probed in
 * vain (ENOENT) and never opened anywhere, with every path tried. The usual
 * cause is a `dlopen` of a library the package lacks.
 */
export function failedSearches(result: Pick<TraceResult, 'opened' | 'missing'>): FailedSearch[] {
  const found = new Set<string>();
  for (const o of result.opened) found.add(posix.basename(o.path));
  const byName = new Map<string, FailedSearch>();
  for (const m of result.missing) {
    const base = posix.basename(m.path);
    if (found.has(base)) continue;
    let entry = byName.get(base);
    if (!entry) {
      entry = { basename: base, probed: [], attempts: 0 };
      byName.set(base, entry);
    }
    entry.probed.push(m.path);
    entry.attempts += m.count;
  }
  return [...byName.values()].sort((x, y) =>
    x.basename < y.basename ? -1 : x.basename > y.basename ? 1 : 0,
  );
}

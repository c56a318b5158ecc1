/**
 * The diagnosis rules: from log events to findings, each with the log lines
 * that prove it and what to do about it.
 *
 * Two kinds of evidence meet here. The program's own words ("libzkplug.so:
 * cannot open shared object file", "Read-only file system") say what failed;
 * the system-call trace says where it looked. A search that failed in ten
 * folders and then succeeded is no miss; the last failed attempt of a search
 * that never succeeded is. State is bounded: a few evidence lines per finding,
 * a capped table of searches still open.
 */

import type { Finding, FindingKind, FixEntry, FixFolder, Severity } from '../record/findings.js';
import type { LogEvent, LogLine, SyscallEvent } from './events.js';
import type { ImageContents, ImageMount } from './image-contents.js';
import { kernelStopLine } from './kernel-stop.js';
import { baseName, GUEST_LIBRARY_DIRS, guestLibraryPath, type Locate } from './locate.js';

export type { Finding, FindingKind, FixEntry, FixFolder, Severity } from '../record/findings.js';

const MAX_EVIDENCE = 8;
const MAX_EVIDENCE_CHARS = 300;
const MAX_OPEN_SEARCHES = 10_000;

const OPEN_CALLS = new Set(['open', 'openat', 'openat2', 'creat', 'uselib']);
const EXEC_CALLS = new Set(['execve', 'execveat']);
/** The calls that start another process or program: Nanos answers each (but a thread's clone) with ENOSYS. */
const PROCESS_CALLS = new Set(['fork', 'vfork', 'clone', 'clone3', 'execve', 'execveat']);
/** The program's words for a call that is not implemented (C's strerror, Rust's io::Error, Python's OSError). */
const NOT_IMPLEMENTED = /[Ff]unction not implemented|os error 38|[Ee]rrno:? ?38\b|\bENOSYS\b/;
/** Words that say the unimplemented call was a fork or an exec (C, Go's "fork/exec", Python, Rust). */
const PROCESS_WORDS =
  /\b(?:v?fork|fork\/exec|exec(?:ve|vp|v|l|lp)?|posix_spawnp?|spawn|clone3?|subprocess|[Pp]open|multiprocessing)\b/;

/** Probes every healthy program makes and may fail: never a cause. */
const BENIGN_PATHS = [
  /^\/etc\/ld\.so\.(preload|nohwcap)$/,
  /\/locale\//,
  /\/locale-archive$/,
  /\/gconv\//,
  /^\/etc\/localtime$/,
  /^\/etc\/(nsswitch\.conf|host\.conf|resolv\.conf|gai\.conf)$/,
  /^\/usr\/share\/zoneinfo\//,
  // Split debug info a Rust backtrace looks for beside each object (gimli); absent in every release build.
  /\.dwp$/,
];

/**
 * /proc and /sys files that runtimes read to tune themselves and do without when absent. Nanos has no cgroups and
 * makes few of these; a copy of the host's file in the image would describe the host, not the unikernel. Each
 * miss is an info finding that says so, never a file to add.
 */
const OPTIONAL_PROBES: { path: RegExp; why: string }[] = [
  {
    path: /^\/proc\/(?:self|thread-self|\d+)\/cgroup$/,
    why: "Rust's std::thread::available_parallelism, the num_cpus crate, Go's runtime and the JVM read it to find the process's cgroup and its CPU quota. Nanos has no cgroups; without the file they take the process as unlimited and count the CPUs it may run on (sched_getaffinity)",
  },
  {
    path: /^\/sys\/fs\/cgroup(?:\/|$)/,
    why: "Rust's std, num_cpus, Go's runtime and the JVM read cgroup limits here (the CPU quota in cpu.max, or cpu.cfs_quota_us and cpu.cfs_period_us; a memory limit). Nanos has no cgroups; without the file they take the process as unlimited",
  },
  {
    path: /^\/proc\/sys\/vm\/overcommit_memory$/,
    why: "glibc's malloc (whether it may shrink its heaps) and jemalloc read the kernel's overcommit policy here; without the file they keep their defaults",
  },
  {
    path: /^\/sys\/kernel\/mm\/transparent_hugepage\//,
    why: "Go's runtime, jemalloc and glibc's malloc tunables read the transparent huge page settings here; without the file they do not ask for huge pages",
  },
];

/** Why a program reads this path and does without it, when it is a well-known optional /proc or /sys probe. */
function optionalProbe(path: string): string | undefined {
  return OPTIONAL_PROBES.find((p) => p.path.test(path))?.why;
}

const LIBRARY_NAME = /\.so(\.[0-9][0-9.]*)?$|\.so\.[0-9]/;

/** A quick filter so most output lines cost one regex test. */
const INTERESTING =
  /[Ff]unction not implemented|os error 38|[Ee]rrno:? ?38|ENOSYS|shared object|No such file|Read-only file system|KVM|kvm|emulation failure|[Oo]ut of memory|Cannot allocate memory|memory allocation of|bad_alloc|Process abort|\*\*\* signal|fault address|program startup failed|program interpreter|program file|Segmentation fault|panicked at|^panic: |SIG(SEGV|BUS|ILL|FPE)|in kernel mode|context type|version `|wrong ELF class|OOM|EOF while parsing|Expecting value|end of JSON input|^assertion |^exception (?:during|for invalid)|^cpu \d+, state /;

type Claim = 'program' | 'trace' | 'listing';

interface Draft {
  kind: FindingKind;
  name: string;
  severity: Severity;
  order: number;
  evidence: { log: number; lineNo: number; line: string }[];
  evidenceCount: number;
  /** The absolute path the program asked for, when known. */
  wantedPath: string | undefined;
  claims: Set<Claim>;
  attempts: number;
  searchedDirs: string[];
  message: string | undefined;
  fix: string | undefined;
  /** Nanos's own words when it could not start the program (`program startup failed on exec: ...`). */
  startup: string | undefined;
  /** The program's own error line that names no file ("No such file or directory (os error 2)"), tied to this miss. */
  unnamedReport: string | undefined;
  /** fork-exec-unsupported: the calls that failed and the programs the console names, each once, in order. */
  calls: string[];
  programs: string[];
  lastLog: string;
}

interface Search {
  first: LogLine;
  last: LogLine;
  lastPath: string;
  count: number;
  dirs: string[];
  exec: boolean;
}

interface LogState {
  log: string;
  index: number;
  searches: Map<string, Search>;
  bootMessage: string | undefined;
  boots: number;
  bootLines: LogLine[];
  outputSinceBoot: boolean;
  lastKernelTime: number;
  previousText: string;
  summary: LogLine[];
  lastCrash: Draft | undefined;
  /** The program's first "No such file or directory" that names no file (Rust's io::Error, perror). */
  unnamedMiss: LogLine | undefined;
}

/** Format one evidence line. */
export function evidenceLine(at: LogLine): string {
  const text = at.text.length > MAX_EVIDENCE_CHARS ? `${at.text.slice(0, MAX_EVIDENCE_CHARS)}…` : at.text;
  return `${at.log}:${at.lineNo}: ${text}`;
}

function isBenign(path: string): boolean {
  return BENIGN_PATHS.some((re) => re.test(path));
}

/** A line of program output without the trace line Nanos glued after it (`...directory[2] write(2, ...) = 25`). */
function ownWords(text: string): string {
  return text.replace(/\[\d+\] (?:[a-z_][a-z0-9_]*\(|<\.\.\. ).*$/, '').trim();
}

/** The first absolute path in a line of program output. */
function firstAbsolutePath(text: string): string | undefined {
  const m = /(?:^|[\s('"`=])(\/[^\s:,'"`()]+)/.exec(text);
  return m?.[1];
}

const WORD_END = new Set([...' \t\n\r\v\f:\'"()'].map((c) => c.charCodeAt(0)));

/**
 * The word (no space, colon, quote or parenthesis) right before the first `phrase` that has one, and what
 * follows the phrase: what /([^\s:'"()]+)PHRASE/ finds, in linear time. The regex tries every start in a long
 * run of word characters and scans the run from each: a 64 KiB line of hex with "KVM" in it took minutes.
 */
function wordBefore(text: string, phrase: string): { word: string; after: number } | undefined {
  for (let at = text.indexOf(phrase); at !== -1; at = text.indexOf(phrase, at + 1)) {
    let start = at;
    while (start > 0 && !WORD_END.has(text.charCodeAt(start - 1))) start--;
    if (start < at) return { word: text.slice(start, at), after: at + phrase.length };
  }
  return undefined;
}

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** The fields every finding made from a draft starts with. */
type FindingBase = Pick<Finding, 'kind' | 'severity' | 'name' | 'evidence'> & { order: number };

/** Phrases a finding's message adds: whether the program said so itself, what the trace shows searched. */
interface FindingWords {
  said: boolean;
  searched: string;
  unsure: string;
}

function sortedEvidence(list: { log: number; lineNo: number; line: string }[]): string[] {
  return [...list].sort((a, b) => a.log - b.log || a.lineNo - b.lineNo).map((e) => e.line);
}

const SEVERITY_RANK: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/**
 * Collects evidence from the events of one or more logs and turns it into
 * findings. One instance per diagnosis; feed each log between startLog/endLog.
 */
export class Diagnoser {
  private readonly drafts = new Map<string, Draft>();
  private state: LogState | undefined;
  private order = 0;
  /** Searches dropped because too many were open at once. */
  droppedSearches = 0;

  constructor(private readonly image?: ImageContents) {}

  private logs = 0;

  startLog(log: string): void {
    this.state = {
      log,
      index: this.logs++,
      searches: new Map(),
      bootMessage: undefined,
      boots: 0,
      bootLines: [],
      outputSinceBoot: false,
      lastKernelTime: -1,
      previousText: '',
      summary: [],
      lastCrash: undefined,
      unnamedMiss: undefined,
    };
  }

  /** Feed one event of the current log. */
  readonly event = (event: LogEvent): void => {
    const s = this.state!;
    switch (event.type) {
      case 'syscall':
        s.outputSinceBoot = true;
        this.syscall(s, event);
        return;
      case 'output':
        s.outputSinceBoot = true;
        this.text(s, event.at, event.at.text);
        s.previousText = event.at.text;
        return;
      case 'kernel':
        this.kernel(s, event.at, event.time, event.message);
        this.text(s, event.at, event.message);
        s.previousText = event.message;
        return;
      case 'missing-listed': {
        if (isBenign(event.name)) return;
        // Nanos lists basenames: a name the trace already showed as an optional probe is that probe.
        const probe = this.drafts.get(`optional-probe:${baseName(event.name)}`);
        if (probe) {
          this.addEvidence(probe, event.at);
          return;
        }
        const kind = LIBRARY_NAME.test(event.name) ? 'missing-library' : 'missing-file';
        const d = this.draft(kind, baseName(event.name), 'listing');
        this.addEvidence(d, event.at);
        return;
      }
      case 'summary':
        if (event.errors > 0 && (OPEN_CALLS.has(event.syscall) || EXEC_CALLS.has(event.syscall))) {
          if (s.summary.length < 4) s.summary.push(event.at);
        }
        return;
      case 'trace-end':
        if (!event.exited) {
          // The trace stops with no thread calling exit: the run was stopped (timeout, Ctrl-C) or the console
          // was cut while the program still ran. Where each thread was is all a console can say of a stall.
          // A thread stopped inside an unmap while the program ran on: Nanos's deadlock with more than one vCPU.
          const stalled = event.unmapping.length > 0;
          const d = this.draft(stalled ? 'unmap-stall' : 'still-running', 'program', 'trace');
          d.severity = stalled ? 'error' : 'warning';
          for (const at of [...event.unmapping.map((u) => u.at), ...event.lastCalls]) this.addEvidence(d, at);
          if (stalled) d.message ??= unmapStallMessage(event.unmapping.map((u) => String(u.thread)));
        }
        return;
      case 'exit':
        if (event.signal) {
          const d = this.draft('crash', event.signal, 'trace');
          d.message ??= `The program was killed by ${event.signal}.`;
          this.addEvidence(d, event.at);
        }
        return;
    }
  };

  /** The current log ended: searches still open are misses. */
  endLog(): void {
    const s = this.state!;
    // The program said "No such file or directory" without naming the file: the last open that failed before
    // it (and never succeeded) is the file it meant; later misses (a backtrace's .dwp files) are not.
    const unnamed = s.unnamedMiss;
    let meant: string | undefined;
    if (unnamed) {
      let latest = -1;
      for (const [name, search] of s.searches) {
        if (search.exec || search.last.lineNo > unnamed.lineNo || search.last.lineNo <= latest) continue;
        latest = search.last.lineNo;
        meant = name;
      }
    }
    for (const [name, search] of s.searches) {
      const kind = search.exec
        ? 'missing-program'
        : LIBRARY_NAME.test(name)
          ? 'missing-library'
          : 'missing-file';
      const d = this.draft(
        kind,
        search.exec || kind === 'missing-file' ? search.lastPath : name,
        'trace',
        name,
      );
      if (search.lastPath.startsWith('/') && (kind !== 'missing-library' || search.count === 1)) {
        d.wantedPath ??= search.lastPath;
      }
      d.attempts += search.count;
      for (const dir of search.dirs) if (d.searchedDirs.length < 64) d.searchedDirs.push(dir);
      if (search.count > 1) this.addEvidence(d, search.first);
      this.addEvidence(d, search.last);
      if (name === meant && unnamed) {
        d.claims.add('program');
        d.severity = 'error';
        d.unnamedReport = ownWords(unnamed.text);
        if (!search.lastPath.startsWith('/')) d.name = search.lastPath;
        this.addEvidence(d, unnamed);
      }
    }
    if (unnamed && !meant) {
      // No trace to say which file: say so, and how to find out.
      const d = this.draft('missing-file', 'an unnamed file', 'program', 'unnamed:');
      d.unnamedReport = ownWords(unnamed.text);
      this.addEvidence(d, unnamed);
    }
    if (s.summary.length > 0) {
      for (const d of this.drafts.values()) {
        if (d.lastLog !== s.log || (d.kind !== 'missing-library' && d.kind !== 'missing-file')) continue;
        for (const row of s.summary) this.addEvidence(d, row);
      }
    }
    if (s.boots >= 2) {
      const d = this.draft('reboot-loop', 'reboot', 'program');
      d.message = `The unikernel booted ${s.boots} times in one console: each time the program ended, the VM rebooted and ran it again.`;
      for (const at of s.bootLines) this.addEvidence(d, at);
    }
    this.state = undefined;
  }

  /** Turn what was collected into findings, finding host files for misses. */
  async findings(locate: Locate): Promise<Finding[]> {
    const out: Finding[] = [];
    const mountDrafts = new Map<string, { mount: ImageMount; drafts: Draft[] }>();
    for (const d of this.drafts.values()) {
      if (d.kind === 'missing-file' && d.wantedPath && this.image) {
        const mount = this.image.mounts.find((m) => under(d.wantedPath!, m.path));
        if (mount) {
          const entry = mountDrafts.get(mount.path) ?? { mount, drafts: [] };
          entry.drafts.push(d);
          mountDrafts.set(mount.path, entry);
          continue;
        }
      }
      out.push(await this.finish(d, locate));
    }
    for (const { mount, drafts } of mountDrafts.values()) {
      const files = drafts.map((d) => d.wantedPath!);
      out.push({
        kind: 'empty-mount',
        severity: 'error',
        name: mount.path,
        message: `The program found nothing at ${files.join(', ')}, inside ${mount.path} where the image mounts volume ${mount.volume}. When the volume's disk is not attached, Nanos says nothing and the mount point is just an empty folder.`,
        fix: `Attach the volume's disk to the VM (ops: \`--mounts ${mount.volume}:${mount.path}\`, QEMU: a second -drive) and check that the volume holds ${files.map(baseName).join(', ')}.`,
        evidence: sortedEvidence(drafts.flatMap((d) => d.evidence)).slice(0, MAX_EVIDENCE),
        order: Math.min(...drafts.map((d) => d.order)),
      } as Finding & { order: number });
    }
    if (this.image && !this.image.flags.debug_exit && !this.image.flags.expected_exit_code) {
      out.push({
        kind: 'exit-status-lost',
        severity: 'info',
        name: 'debug_exit',
        message:
          "The image does not set debug_exit, so QEMU exits 0 whatever the program returns: a failed prover looks like a success to the host (ops run ignores QEMU's status as well).",
        fix: 'Set debug_exit in the image (Ops config: "ManifestPassthrough": {"debug_exit": "t"}) and start QEMU with -device isa-debug-exit; QEMU then exits with (code << 1) | 1.',
        evidence: [],
        order: Number.MAX_SAFE_INTEGER,
      } as Finding & { order: number });
    }
    const ordered = out as (Finding & { order?: number })[];
    ordered.sort(
      (a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || (a.order ?? 0) - (b.order ?? 0),
    );
    return ordered.map((f) => ({
      kind: f.kind,
      severity: f.severity,
      name: f.name,
      ...(f.hostPath ? { hostPath: f.hostPath } : {}),
      ...(f.guestPath ? { guestPath: f.guestPath } : {}),
      ...(f.presentAt ? { presentAt: f.presentAt } : {}),
      ...(f.field ? { field: f.field } : {}),
      message: f.message,
      fix: f.fix,
      evidence: f.evidence,
    }));
  }

  private draft(kind: FindingKind, name: string, claim: Claim, key = baseName(name)): Draft {
    const id = `${kind}:${key}`;
    let d = this.drafts.get(id);
    if (!d) {
      d = {
        kind,
        name,
        severity: 'warning',
        order: this.order++,
        evidence: [],
        evidenceCount: 0,
        wantedPath: undefined,
        claims: new Set(),
        attempts: 0,
        searchedDirs: [],
        message: undefined,
        fix: undefined,
        startup: undefined,
        unnamedReport: undefined,
        calls: [],
        programs: [],
        lastLog: this.state?.log ?? '',
      };
      this.drafts.set(id, d);
    }
    d.claims.add(claim);
    if (claim === 'program') d.severity = 'error';
    if (this.state) d.lastLog = this.state.log;
    return d;
  }

  private addEvidence(d: Draft, at: LogLine): void {
    const log = this.state?.index ?? 0;
    if (d.evidence.some((e) => e.log === log && e.lineNo === at.lineNo)) return;
    const entry = { log, lineNo: at.lineNo, line: evidenceLine(at) };
    d.evidenceCount++;
    if (d.evidence.length < MAX_EVIDENCE) d.evidence.push(entry);
    else d.evidence[MAX_EVIDENCE - 1] = entry; // keep the first ones and the latest
  }

  /** A miss of a well-known optional /proc or /sys probe is an optional-probe finding: true when `path` is one. */
  private optionalProbeMiss(path: string, at: LogLine): boolean {
    if (!optionalProbe(path)) return false;
    const d = this.draft('optional-probe', path, 'trace');
    d.wantedPath = path;
    this.addEvidence(d, at);
    return true;
  }

  private syscall(s: LogState, e: SyscallEvent): void {
    const { name, path, errno } = e;
    if (errno === 'EROFS') {
      const target = path ?? 'a read-only volume';
      const d = this.draft('readonly-volume', target, 'trace', 'rofs');
      if (path) d.wantedPath ??= path;
      this.addEvidence(d, e.at);
      return;
    }
    if (errno === 'ENOMEM') {
      const d = this.draft('out-of-memory', 'memory', 'trace');
      this.addEvidence(d, e.at);
      return;
    }
    if (errno === 'EACCES' && name === 'mmap') {
      const d = this.draft('exec-protection', 'mmap', 'trace', 'exec-protection');
      this.addEvidence(d, e.at);
      return;
    }
    if (errno === 'ENOSYS' && PROCESS_CALLS.has(name)) {
      this.forkExec(e.at, 'trace', name, path);
      return;
    }
    const exec = EXEC_CALLS.has(name);
    if (!path || (!exec && !OPEN_CALLS.has(name))) return;
    if (errno === undefined && s.searches.size === 0) return;
    const slash = path.lastIndexOf('/');
    const base = slash === -1 || slash === path.length - 1 ? baseName(path) : path.slice(slash + 1);
    if (errno === undefined) {
      s.searches.delete(base);
      return;
    }
    if (errno !== 'ENOENT' && errno !== 'ENOTDIR') return;
    if (isBenign(path)) return;
    // Never a search: not a file to add, nor the file an unnamed error meant.
    if (this.optionalProbeMiss(path, e.at)) return;
    let search = s.searches.get(base);
    if (!search) {
      if (s.searches.size >= MAX_OPEN_SEARCHES) {
        this.droppedSearches++;
        return;
      }
      search = { first: e.at, last: e.at, lastPath: path, count: 0, dirs: [], exec };
      s.searches.set(base, search);
    }
    search.count++;
    search.last = e.at;
    search.lastPath = path;
    const dir = path.slice(0, Math.max(1, path.lastIndexOf('/')));
    if (search.dirs.length < 64 && !search.dirs.includes(dir)) search.dirs.push(dir);
  }

  private kernel(s: LogState, at: LogLine, time: number, message: string): void {
    // Nanos prints the same first message on every boot; its clock may or may not restart.
    const restarted = s.lastKernelTime >= 0 && time + 0.5 < s.lastKernelTime;
    if (s.bootMessage === undefined) {
      s.bootMessage = message;
      s.boots = 1;
      s.bootLines.push(at);
    } else if ((message === s.bootMessage && s.outputSinceBoot) || restarted) {
      s.boots++;
      if (s.bootLines.length < 4) s.bootLines.push(at);
      else s.bootLines[3] = at;
      s.outputSinceBoot = false;
    }
    s.lastKernelTime = time;
  }

  /** The Nanos kernel's words when it stops (an assertion, a fault in the kernel): the run cannot go on. */
  private kernelStopped(s: LogState, at: LogLine, text: string): boolean {
    const how = kernelStopLine(text);
    if (!how) return false;
    const d = this.draft('kernel-stop', 'kernel', 'program');
    // A fault's message is the line before its `cpu: N, context type: N` header.
    const quote =
      how === 'dump' && /^cpu: /.test(text.trim()) && s.previousText
        ? `${s.previousText.trim()} (${text.trim()})`
        : text.trim();
    d.message ??= kernelStopMessage(quote);
    this.addEvidence(d, at);
    return true;
  }

  /** The loader's and Nanos's words for a program that could not load a library or start at all. */
  private loaderOrStartup(at: LogLine, text: string): boolean {
    let m: RegExpExecArray | null;
    const cannotOpen = wordBefore(text, ': cannot open shared object file');
    if (cannotOpen) {
      const wanted = cannotOpen.word;
      const d = this.draft('missing-library', baseName(wanted), 'program');
      if (wanted.startsWith('/')) d.wantedPath = wanted;
      this.addEvidence(d, at);
      return true;
    }
    const cannotMap = wordBefore(text, ': failed to map segment from shared object');
    if (cannotMap) {
      const d = this.draft('exec-protection', baseName(cannotMap.word), 'program', 'exec-protection');
      d.name = baseName(cannotMap.word);
      this.addEvidence(d, at);
      return true;
    }
    const wrongClass = wordBefore(text, ': wrong ELF class: ');
    const elfClass = wrongClass && /^\S+/.exec(text.slice(wrongClass.after));
    if (wrongClass && elfClass) {
      const d = this.draft('library-mismatch', baseName(wrongClass.word), 'program');
      d.message = `${wrongClass.word} is built for another architecture (${elfClass[0]}).`;
      this.addEvidence(d, at);
      return true;
    }
    m = /version `([^']+)' not found \(required by ([^)]+)\)/.exec(text);
    if (m) {
      const d = this.draft('library-mismatch', m[1]!, 'program');
      d.message = `${m[2]} needs symbol version ${m[1]}, which the library in the image lacks: the image holds an older library than the one the program was built against.`;
      this.addEvidence(d, at);
      return true;
    }
    // Nanos could not start the program: `program startup failed on exec: (result:CAUSE)`.
    m = /unable to change cwd to "([^"]*)"(?:; ([^)]*))?/.exec(text);
    if (m) {
      const d = this.draft('missing-cwd', m[1]!, 'program');
      d.wantedPath = m[1]!;
      d.startup = m[2]?.trim() || 'no entry';
      this.addEvidence(d, at);
      return true;
    }
    m = /(couldn't find program interpreter|unable to open program file) ([^\s)]+)/.exec(text);
    if (m) {
      const d = this.draft('missing-program', m[2]!, 'program');
      d.wantedPath = m[2]!;
      d.startup = m[1]!;
      this.addEvidence(d, at);
      return true;
    }
    const startup = /program startup failed (?:on )?(\S+): \(?(?:result:)?(.*?)\)?\s*$/.exec(text);
    if (startup) {
      const d = this.draft('startup-failed', startup[2]?.trim() || startup[1]!, 'program', 'startup');
      d.startup = startup[2]?.trim() || startup[1]!;
      this.addEvidence(d, at);
      return true;
    }
    return false;
  }

  /** A fork or exec that failed with ENOSYS: one finding for the whole run, naming each call and program. */
  private forkExec(at: LogLine, claim: Claim, call: string | undefined, program: string | undefined): void {
    const d = this.draft('fork-exec-unsupported', 'fork-exec', claim);
    if (call && !d.calls.includes(call)) d.calls.push(call);
    if (program && !d.programs.includes(program) && d.programs.length < 8) d.programs.push(program);
    this.addEvidence(d, at);
  }

  /**
   * The program's own words for a call not implemented: a fork or exec when it says so (or when the trace already
   * showed one fail), naming the program it tried to run when the line does.
   */
  private notImplemented(at: LogLine, text: string): boolean {
    if (!NOT_IMPLEMENTED.test(text)) return false;
    const words = ownWords(text);
    const traced = this.drafts.get('fork-exec-unsupported:fork-exec')?.claims.has('trace') ?? false;
    // Python's subprocess names the program whose exec failed:
    // `OSError: [Errno 38] Function not implemented: 'bunzip2'`.
    const quoted = /not implemented: '([^']+)'/.exec(words)?.[1];
    if (!PROCESS_WORDS.test(words) && !traced && !quoted) return false;
    // The call the words name, unless the trace already named the calls themselves (glibc's fork is a clone).
    const call = PROCESS_WORDS.exec(words)?.[0];
    this.forkExec(
      at,
      'program',
      call && !traced && PROCESS_CALLS.has(call) ? call : undefined,
      quoted ?? firstAbsolutePath(words),
    );
    return true;
  }

  private text(s: LogState, at: LogLine, text: string): void {
    if (!INTERESTING.test(text)) return;
    if (this.kernelStopped(s, at, text)) return;
    if (this.loaderOrStartup(at, text)) return;
    if (this.notImplemented(at, text)) return;
    let m: RegExpExecArray | null;
    if (
      /KVM internal error\. Suberror: (\d+)|^emulation failure|Could not access KVM kernel module|failed to initiali[sz]e (?:kvm|KVM)|KVM: entry failed|kvm run failed/.test(
        text,
      )
    ) {
      const d = this.draft('kvm-failure', 'kvm', 'program');
      this.addEvidence(d, at);
      return;
    }
    if (
      /[Oo]ut of memory|Cannot allocate memory|memory allocation of \d+ bytes failed|std::bad_alloc|; OOM$/.test(
        text,
      )
    ) {
      const d = this.draft('out-of-memory', 'memory', 'program');
      this.addEvidence(d, at);
      return;
    }
    m = /Process abort: (.+?) received by thread (\d+)/.exec(text);
    if (m) {
      const d = this.draft('crash', m[1]!, 'program');
      d.message = `Nanos stopped the program: ${m[1]} in thread ${m[2]}.`;
      s.lastCrash = d;
      this.addEvidence(d, at);
      return;
    }
    m = /\*\*\* signal (\d+) received by tid (\d+)/.exec(text);
    if (m) {
      const d = this.draft('crash', `signal ${m[1]}`, 'program');
      d.message = `The program received signal ${m[1]} (thread ${m[2]}).`;
      s.lastCrash = d;
      this.addEvidence(d, at);
      return;
    }
    if (/fault address 0x[0-9a-f]+/.test(text) && s.lastCrash) {
      this.addEvidence(s.lastCrash, at);
      return;
    }
    if (/^cpu: \d+, context type: \d+/.test(text)) {
      const cause = s.previousText.trim() || 'kernel fault';
      const d = this.draft('crash', cause, 'program');
      d.message = `Nanos hit a fault and stopped: ${cause}.`;
      s.lastCrash = d;
      this.addEvidence(d, at);
      return;
    }
    m = /Segmentation fault|panicked at|^panic: |SIGSEGV: segmentation violation/.exec(text);
    if (m) {
      const d = this.draft('crash', m[0].replace(/:\s*$/, ''), 'program');
      d.message = `The program crashed: ${text.trim()}`;
      this.addEvidence(d, at);
      return;
    }
    // A parser that met the end of its input before the first value: the words of serde_json, Python's json
    // and Go's encoding/json for an empty document. Under Nanos, standard input is always empty.
    if (
      /EOF while parsing a value at line 1 column 0|Expecting value: line 1 column 1 \(char 0\)|^(?:.*: )?unexpected end of JSON input$/.test(
        text,
      )
    ) {
      const d = this.draft('empty-input', 'stdin', 'program');
      this.addEvidence(d, at);
      return;
    }
    if (/Read-only file system/.test(text)) {
      const path = firstAbsolutePath(text);
      const d = this.draft('readonly-volume', path ?? 'a read-only volume', 'program', 'rofs');
      if (path) {
        d.wantedPath = path;
        d.name = path;
      }
      this.addEvidence(d, at);
      return;
    }
    if (/No such file or directory/.test(text)) {
      const path = firstAbsolutePath(text);
      // Rust's io::Error ("No such file or directory (os error 2)", anyhow's "Error: ...") and perror name
      // no file; with a trace the failed open before it does (endLog).
      if (!path && !/['"`]/.test(text)) s.unnamedMiss ??= at;
      if (!path || isBenign(path)) return;
      if (this.optionalProbeMiss(path, at)) return;
      const d = this.draft('missing-file', path, 'program');
      d.wantedPath = path;
      d.name = path;
      this.addEvidence(d, at);
    }
  }

  private async finish(d: Draft, locate: Locate): Promise<Finding & { order: number }> {
    const base: FindingBase = {
      kind: d.kind,
      severity: d.severity,
      name: d.name,
      order: d.order,
      evidence: sortedEvidence(d.evidence),
    };
    const said = d.claims.has('program');
    const searched =
      d.attempts > 0
        ? ` The trace shows ${d.attempts} failed attempt${d.attempts === 1 ? '' : 's'} in ${d.searchedDirs.length} folder${d.searchedDirs.length === 1 ? '' : 's'} and no later success.`
        : '';
    const unsure = said
      ? ''
      : ' The program did not report it as an error: if it runs on without it, the probe was optional.';
    const words: FindingWords = { said, searched, unsure };
    switch (d.kind) {
      case 'missing-library':
        return this.finishMissingLibrary(d, base, words, locate);
      case 'missing-cwd':
        return this.finishMissingCwd(d, base);
      case 'missing-file':
      case 'missing-program':
        return this.finishMissingFile(d, base, words, locate);
      case 'readonly-volume':
        return this.finishReadonlyVolume(d, base);
      case 'optional-probe':
        return finishOptionalProbe(d, base);
      default:
        return this.finishFixed(d, base, said);
    }
  }

  /** A library the loader could not load: not in the image, in a folder the loader skips, or present but broken. */
  private async finishMissingLibrary(
    d: Draft,
    base: FindingBase,
    { searched, unsure }: FindingWords,
    locate: Locate,
  ): Promise<Finding & { order: number }> {
    const name = d.name;
    const present = [...(this.image?.files.entries() ?? [])].filter(([g]) => baseName(g) === name);
    const located = await locate(name, 'library', {
      ...(d.wantedPath ? { wantedPath: d.wantedPath } : {}),
      searchedDirs: d.searchedDirs,
    });
    const hostPath = located?.hostPath ?? present.find(([, h]) => h)?.[1];
    const guestPath = located?.guestPath ?? d.wantedPath ?? guestLibraryPath(name);
    const misplaced = present.filter(([g]) => !GUEST_LIBRARY_DIRS.includes(g.slice(0, g.lastIndexOf('/'))));
    let message = `The program could not load ${name}.${searched}${unsure}`;
    let fix: string;
    if (present.length > 0 && misplaced.length === present.length && !d.wantedPath) {
      message += ` The image holds it at ${misplaced.map(([g]) => g).join(', ')}, but glibc's loader in Nanos does not look there: it searches ${GUEST_LIBRARY_DIRS.join(', ')} (and their glibc-hwcaps/tls subfolders) and /etc/ld.so.cache.`;
      fix = `Place the library at ${guestPath} instead of ${misplaced.map(([g]) => g).join(', ')}${hostPath ? ` (from ${hostPath})` : ''}.`;
    } else if (present.length > 0 && misplaced.length < present.length) {
      message += ` The image does hold it at ${present.map(([g]) => g).join(', ')}, where the loader looks: it was found but could not be loaded (a dependency of it is missing, or it is built for another system).`;
      fix = `Run \`ldd ${hostPath ?? name}\` on the host and add the libraries it needs; check that it is an x86-64 glibc library.`;
    } else if (hostPath) {
      fix = `Add ${hostPath} to the image at ${guestPath}. Libraries a program dlopens are not listed by ldd, so Ops never adds them on its own.`;
    } else {
      fix = `Find ${name} on the build host (\`find / -name '${name}*'\`) and add it to the image at ${guestPath}; give its folder with --root DIR and debug will name it.`;
    }
    return {
      ...base,
      ...(hostPath ? { hostPath } : {}),
      guestPath,
      ...(present.length ? { presentAt: present.map(([g]) => g) } : {}),
      message,
      fix,
    };
  }

  /** The manifest's working directory missing from the image, or a file there. */
  private finishMissingCwd(d: Draft, base: FindingBase): Finding & { order: number } {
    const path = d.name;
    if (this.image?.files.has(path)) {
      // Nanos says "no entry" for a cwd that is a file too: a folder cannot be added there.
      return {
        ...base,
        severity: 'error',
        guestPath: path,
        field: 'manifestPassthrough.cwd',
        message: `Nanos could not start the program: its working directory ${path} (the manifest's cwd) is a file in the image, not a folder (${d.startup ?? 'no entry'}). Nanos exits 127 before the program runs.`,
        fix: `Set "manifestPassthrough": { "cwd": ... } to a folder (add one to the recipe's "dirs" if the image has none there), not the file ${path}.`,
      };
    }
    return {
      ...base,
      severity: 'error',
      guestPath: path,
      field: 'dirs',
      message: `Nanos could not start the program: its working directory ${path} (the manifest's cwd) is not a folder in the image (${d.startup ?? 'no entry'}). Nanos exits 127 before the program runs.`,
      fix: `Add the folder to the recipe's "dirs": { "guest": "${path}" } (\`uniprove debug --fix\` does, and packages again); or set "manifestPassthrough": { "cwd": ... } to a folder the image has.`,
    };
  }

  /** A file the program looked for, or the program (or its interpreter) Nanos could not start. */
  private async finishMissingFile(
    d: Draft,
    base: FindingBase,
    { searched, unsure }: FindingWords,
    locate: Locate,
  ): Promise<Finding & { order: number }> {
    const wanted = d.wantedPath;
    const program = d.kind === 'missing-program';
    const located = await locate(
      baseName(d.name),
      program ? 'program' : 'file',
      wanted ? { wantedPath: wanted } : {},
    );
    const guestPath = located?.guestPath ?? wanted;
    const what = program
      ? /ld-linux|ld\.so|\/ld-/.test(d.name)
        ? `the program's interpreter (dynamic loader) ${d.name}`
        : `the program ${d.name}`
      : d.name;
    if (d.unnamedReport && d.name === 'an unnamed file') {
      return {
        ...base,
        message: `The program stopped with "${d.unnamedReport}" and did not say which file: Rust's std::io::Error (and perror) print no path, and this console has no system-call trace to tell.`,
        fix: 'Run it again with a trace (`uniprove run --trace`, or ops run --trace): debug then names the file it looked for. Meanwhile check the paths in its arguments and environment against the image and the volumes mounted (a relative path is taken from the working directory, / unless manifestPassthrough.cwd says otherwise), and the paths written inside its own input files.',
      };
    }
    const reported = d.unnamedReport
      ? ` It is the last file the program failed to open before it stopped with "${d.unnamedReport}", an error that names no file.`
      : '';
    const message = program
      ? `Nanos could not start ${what}: it is not in the image.${searched}`
      : `The program looked for ${what} and did not find it.${searched}${reported}${d.unnamedReport ? '' : unsure}`;
    // A file whose folder the image lacks may be one the program meant to write, not read.
    const folder = guestPath ? guestPath.slice(0, guestPath.lastIndexOf('/')) || '/' : undefined;
    const folderMissing =
      this.image &&
      folder &&
      folder !== '/' &&
      ![...this.image.files.keys()].some((g) => g.startsWith(`${folder}/`));
    const orWrites = folderMissing
      ? ` If the program writes this file rather than reads it, its folder ${folder} does not exist in the image: mount a volume there or add the folder.`
      : '';
    const fix = located
      ? `Add ${located.hostPath} to the image at ${located.guestPath}.${orWrites}`
      : guestPath
        ? `Add the file the program expects at ${guestPath} to the image (or to a volume mounted there); give the folder that holds it with --root DIR and debug will name it.${orWrites}`
        : !d.name.includes('/') || d.name.startsWith('/')
          ? `Add ${d.name} to the image where the program looks for it.`
          : `Add ${d.name} to the image where the program looks for it: a relative path, taken from the working directory (/ unless manifestPassthrough.cwd says otherwise). Check the argument or input file that names its folder, and the volume that should be mounted there.`;
    // Nanos's own refusal to start names what the recipe must change: the program's path, or the
    // interpreter (its PT_INTERP) the image lacks.
    if (d.startup) {
      const interp = /interpreter/.test(d.startup);
      return {
        ...base,
        severity: 'error',
        ...(located ? { hostPath: located.hostPath } : {}),
        ...(guestPath ? { guestPath } : {}),
        field: interp ? 'files' : 'program',
        message: interp
          ? `Nanos could not start the program: its interpreter (PT_INTERP) ${d.name} is not in the image (${d.startup}). Nanos exits 127 before the program runs.`
          : `Nanos could not start the program: ${d.name} is not in the image (${d.startup}). Nanos exits 127 before the program runs.`,
        fix: interp
          ? `${located ? `Add ${located.hostPath} to the image at ${located.guestPath}` : `Add the dynamic loader the program names (\`readelf -l PROGRAM | grep interpreter\`) to the recipe's "files" at ${d.name}`} (\`uniprove debug --fix\` adds what it finds); or link the program against the loader the image has, or statically.`
          : `Make the recipe's "program" (or a "program" in "manifestPassthrough") the guest path where the program is in the image, or add it to "files" at ${d.name}.`,
      };
    }
    return {
      ...base,
      ...(located ? { hostPath: located.hostPath } : {}),
      ...(guestPath ? { guestPath } : {}),
      message,
      fix,
    };
  }

  /** A write that failed on a read-only volume (or root file system). */
  private finishReadonlyVolume(d: Draft, base: FindingBase): Finding & { order: number } {
    const mount = d.wantedPath ? this.image?.mounts.find((m) => under(d.wantedPath!, m.path)) : undefined;
    const where = mount ? `volume ${mount.volume} at ${mount.path}` : 'a read-only file system';
    return {
      ...base,
      name: mount?.path ?? d.name,
      severity: 'error',
      message: `The program tried to write ${d.wantedPath ?? 'a file'} on ${where}${mount?.readonly ? ' (mounted with :ro)' : ''}: the write failed with EROFS.`,
      fix: mount
        ? `Mount ${mount.volume} read-write (drop ":ro" from the mount: ${mount.volume}:${mount.path}), or make the prover write its output elsewhere (a read-write volume).`
        : 'Mount that volume read-write (no ":ro"), or make the prover write its output to a read-write volume; the root file system is read-only when readonly_rootfs is set.',
    };
  }

  /** The findings whose words do not depend on where a file could be found. */
  private finishFixed(d: Draft, base: FindingBase, said: boolean): Finding & { order: number } {
    switch (d.kind) {
      case 'startup-failed':
        return {
          ...base,
          severity: 'error',
          field: 'program',
          message: `Nanos could not start the program: ${d.startup ?? d.name}. Nothing of the program ran.`,
          fix: 'Check the recipe\'s "program" (its guest path) and "manifestPassthrough" (program, cwd, exec_protection) against the image; `uniprove verify` runs the package on the host and names what is missing.',
        };
      case 'exec-protection':
        return {
          ...base,
          field: 'manifestPassthrough.exec_protection',
          severity: said ? 'error' : 'warning',
          message: `The loader could not map ${d.name === 'mmap' ? 'a library' : d.name} (mmap refused with EACCES): exec_protection is on, and it breaks glibc's loader in Nanos even when files are marked executable.`,
          fix: 'Turn exec_protection off: remove "exec_protection" from the image manifest (Ops config: drop "ExecProtection": true / the exec_protection ManifestPassthrough).',
        };
      case 'kvm-failure':
        return {
          ...base,
          severity: 'error',
          message:
            'KVM could not run the guest (KVM internal error / emulation failure): common in nested virtual machines where /dev/kvm opens but cannot run Nanos. The VM then hangs.',
          fix: 'Use TCG (--accel tcg): software emulation is slower but works here; ops picks TCG when /proc/cpuinfo lacks vmx/svm.',
        };
      case 'reboot-loop':
        return {
          ...base,
          severity: 'error',
          message: `${d.message ?? 'The unikernel rebooted.'}${this.image?.flags.reboot_on_exit ? ' The image sets reboot_on_exit.' : ''}`,
          fix: 'Start QEMU with -no-reboot, or drop reboot_on_exit (Ops: "RebootOnExit": false) so the VM stops when the program exits; then fix why the program exits non-zero (see its output before each reboot).',
        };
      case 'out-of-memory':
        return {
          ...base,
          severity: said ? 'error' : 'warning',
          message: said
            ? 'The program ran out of memory in the unikernel.'
            : 'Memory allocations failed with ENOMEM in the trace.',
          fix: 'Give the VM more memory (ops: --memory 16G, Ops config "Memory": "16G", QEMU -m), or run a smaller proof size.',
        };
      case 'crash':
        return {
          ...base,
          severity: 'error',
          message: d.message ?? `The program crashed (${d.name}).`,
          fix: 'Run the same command on the host (uniprove verify) to see whether it crashes there too; if it crashes only under Nanos, run again with --trace and look at the last system calls before the fault.',
        };
      case 'empty-input':
        return {
          ...base,
          severity: 'error',
          field: 'env',
          message:
            "The program parsed an empty input: its parser met the end of the input before the first value. Under Nanos a program's standard input is always empty (fd 0 reads end-of-file at once, and there is no shell to write `< input.json`), so a prover that reads its input from stdin gets nothing; an empty input file gives the same words.",
          fix: 'Put the input in the image as a file (recipe "files") and give the program its path, through its own option for an input file when it has one. A program that reads only stdin (zk_evm\'s `leader stdio`): preload provers/zk_evm/stdin-from-file.so with "env": { "LD_PRELOAD": "./stdin-from-file.so", "UNIPROVE_STDIN": "./<the input\'s guest path>" }, which opens that file onto fd 0 before main. If the program read a file, check that the file in the package is not empty.',
        };
      case 'still-running':
        return {
          ...base,
          message: `The trace ends while the program was still running: no thread called exit or exit_group, so the run was stopped (a timeout, Ctrl-C) or its console was cut. The evidence is the last system call of each of its ${d.evidenceCount} thread${d.evidenceCount === 1 ? '' : 's'}: a thread whose last call is a futex wait or an epoll_wait was waiting; one whose last call is anything else was running user code (computing, or stuck) when the console ended.`,
          fix: 'If the program should have ended, compare with a native run (uniprove verify): the last calls show where it was. A program that stops making system calls with every vCPU busy under TCG and its memory no longer growing is stalled, not slow: run it with one vCPU (--cpus 1) to tell a multi-vCPU problem in the guest from a slow one.',
        };
      case 'unmap-stall':
        return {
          ...base,
          message: d.message ?? unmapStallMessage([]),
          fix: 'Give the guest one vCPU: "resources": { "cpus": 1 } in the recipe, or --cpus 1 (and one worker thread where the prover has a setting, such as RAYON_NUM_THREADS=1). docs/provers.md (zkWasm, Inside Nanos) has the reproduction and the Nanos code path.',
        };
      case 'kernel-stop':
        return {
          ...base,
          severity: 'error',
          message: d.message ?? kernelStopMessage('the kernel stopped'),
          fix: KERNEL_STOP_FIX,
        };
      case 'fork-exec-unsupported':
        return finishForkExec(d, base, said);
      case 'library-mismatch':
        return {
          ...base,
          severity: 'error',
          message: d.message ?? `${d.name} does not match the program.`,
          fix: 'Package the libraries from the system that built the program (the same distribution release), not from another machine.',
        };
      default:
        return { ...base, message: d.message ?? d.name, fix: d.fix ?? '' };
    }
  }
}

/** What a kernel stop is, quoting the kernel. */
function kernelStopMessage(quote: string): string {
  return `The Nanos kernel stopped: "${quote}". That is the kernel failing, not the program: nothing of the program ran after it, and the guest need not end by itself (its other vCPUs can spin until a timeout; uniprove run stops it at this line).`;
}

/** What to do about a kernel stop (measured: zkWasm's prove stopped so with 2 vCPUs in a 10G guest, and proved in 16G). */
const KERNEL_STOP_FIX =
  'Run it again with more guest memory ("resources": { "memory": "16G" } or --memory 16G: zkWasm\'s prove with 2 vCPUs stopped on `assertion ctx->refcount.c > 1 failed at src/unix/syscall.c` in a 10G guest and proved in 16G) and, if it stops again, with one vCPU (--cpus 1) to tell a multi-vCPU kernel bug from a lack of memory; report the assertion and this console to nanovms/nanos with the Nanos version (uniprove doctor prints it).';

/** What an unmap-stall is, naming the threads stopped inside an unmap. */
function unmapStallMessage(threads: string[]): string {
  const who =
    threads.length === 0 ? 'a thread' : `thread${threads.length === 1 ? '' : 's'} ${threads.join(' and ')}`;
  return `The trace ends with the program still running and ${who} inside an unmap that never returned (the kernel's vmap_remove_intersection line, then no call from ${threads.length > 1 ? 'them' : 'it'}). That is Nanos's deadlock with more than one vCPU (in 0.1.55 and every later commit checked): munmap of a file mapping, or a mapping over one, holds the process's vmap lock while it waits for every other CPU to flush its TLB, and a CPU taking a page fault spins on that lock with interrupts off, so it never answers. The whole guest stops with every vCPU busy; it does not end by itself.`;
}

/** A fork or exec that Nanos refused: what the program tried, and the two ways out. */
function finishForkExec(d: Draft, base: FindingBase, said: boolean): Finding & { order: number } {
  const programs = d.programs.length ? ` (${d.programs.join(', ')})` : '';
  const calls =
    d.calls.length > 1
      ? `${d.calls.slice(0, -1).join(', ')} and ${d.calls.at(-1)}`
      : (d.calls[0] ?? 'fork or exec');
  return {
    ...base,
    name: d.programs[0] ?? d.calls[0] ?? 'fork',
    severity: said ? 'error' : 'warning',
    message: `The program tried to run another program${programs}: ${calls} failed with ENOSYS (errno 38, "Function not implemented"). Nanos runs one program per unikernel: it has no fork, vfork or execve (clone makes threads only), so a prover that runs a helper (a subprocess, a shell, ldconfig, a compiler) fails there though it runs on the host.${said ? '' : ' The program did not report it as an error: if it runs on without the helper, it was optional.'}`,
    fix: `Do the work in the prover's own process: a library call instead of the helper (Python: bz2 instead of bunzip2, ctypes.CDLL with the library's name instead of find_library), threads instead of processes (not multiprocessing); or run the helper before the image is built and put what it produces in the image (the recipe's files, env or args). \`uniprove discover\` names every program a prover runs (runs-programs warnings; docs/discover.md, "Programs the prover runs").`,
  };
}

/** A /proc or /sys file the program looked for and does without: harmless, and nothing to add to the image. */
function finishOptionalProbe(d: Draft, base: FindingBase): Finding & { order: number } {
  const path = d.wantedPath ?? d.name;
  return {
    ...base,
    severity: 'info',
    name: path,
    message: `The program looked for ${path} and did not find it: harmless. ${optionalProbe(path) ?? 'Programs read it to tune themselves and do without it'}.`,
    fix: `Nothing to do: do not add ${path} to the image. It describes the machine the program runs on, and a file copied from the build host would describe the host instead; the program runs on without it.`,
  };
}

/** The empty folders that fix the findings (a missing working directory): what `debug --fix` adds to `dirs`. */
export function fixFoldersFromFindings(findings: readonly Finding[]): FixFolder[] {
  const out: FixFolder[] = [];
  for (const f of findings) {
    if (f.kind !== 'missing-cwd' || f.field !== 'dirs' || !f.guestPath) continue;
    if (out.some((o) => o.guestPath === f.guestPath)) continue;
    const first = f.evidence[0];
    out.push({
      guestPath: f.guestPath,
      reason: `uniprove debug: missing-cwd ${f.guestPath}${first ? ` (${first})` : ''}`,
    });
  }
  return out;
}

/** The image entries that fix the misses found: what `debug --fix` adds to a recipe, each with its reason. */
export function fixEntriesFromFindings(findings: readonly Finding[]): FixEntry[] {
  const out: FixEntry[] = [];
  const seen = new Set<string>();
  for (const f of findings) {
    if (f.kind !== 'missing-library' && f.kind !== 'missing-file' && f.kind !== 'missing-program') continue;
    // A data file probed in vain is often optional (ld.so.cache, locale files): only add it when its absence was an error.
    if (f.kind !== 'missing-library' && f.severity !== 'error') continue;
    if (!f.hostPath || !f.guestPath || seen.has(f.guestPath)) continue;
    seen.add(f.guestPath);
    const first = f.evidence[0];
    out.push({
      hostPath: f.hostPath,
      guestPath: f.guestPath,
      reason: `uniprove debug: ${f.kind} ${f.name}${first ? ` (${first})` : ''}`,
    });
  }
  return out;
}

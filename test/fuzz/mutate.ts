/**
 * Mutators over real inputs, as fast-check arbitraries: a fuzz input is a corpus item (a real log, ELF or
 * recipe) plus a list of edits, so fast-check shrinks a failure to the few edits that matter.
 */
import fc from 'fast-check';

/** One edit of a byte string; positions are taken modulo the length when applied. */
export type ByteEdit =
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'copy'; from: number; length: number; to: number }
  | { kind: 'repeat'; at: number; length: number; times: number }
  | { kind: 'splice'; donor: number; from: number; length: number; to: number }
  | { kind: 'int'; at: number; width: 2 | 4 | 8; value: bigint; big: boolean }
  | { kind: 'truncate'; at: number };

/** Words that matter to the readers: syscall syntax, strace markers, Nanos console words, escapes. */
export const LOG_TOKENS = [
  '\n',
  '\r\n',
  '\r',
  '"',
  '\\',
  '\\x',
  '\\"',
  '\\0',
  '\\377',
  '...',
  '(',
  ')',
  '{',
  '}',
  '[',
  ']',
  '=',
  ' = -1 ENOENT (No such file or directory)',
  ' = 3</usr/lib/libc.so.6>',
  ' = 0',
  ' = ?',
  '<unfinished ...>',
  '<... openat resumed>',
  '<... execve resumed>)',
  '+++ exited with 0 +++',
  '+++ killed by SIGKILL +++',
  '--- SIGCHLD {si_signo=SIGCHLD} ---',
  'openat(AT_FDCWD, "',
  'open("',
  'execve("/bin/x", ["x"], 0x7ff /* 3 vars */',
  'chdir("',
  'fchdir(3',
  'clone(child_stack=NULL) = 42',
  '", O_RDONLY|O_CLOEXEC',
  '[pid 123] ',
  '[pid  99999999999999999999] ',
  '12345 ',
  '12345.678901 ',
  ' 1 run_thread: ',
  'direct return: ',
  'missing_files_begin',
  'missing_files_end',
  'exit status 3',
  'en1: assigned 10.0.2.15',
  'NOT FOUND',
  'KVM internal error',
  'frame trace:',
  'page fault',
  'No space left on device',
  'exec_protection',
  'syscall summary',
  '\u0000',
  '\u001b[0m',
  'é',
  '\uFFFD',
  '\uD800',
  '0x7fffffffffffffff',
  '-1',
  '99999999999999999999999',
];

const TOKENS = LOG_TOKENS.map((t) => new Uint8Array(Buffer.from(t, 'utf8')));

/** A position or length: any size, taken modulo what it applies to. */
const position = fc.nat({ max: 0x7fffffff });

/** Bytes to insert: a dictionary word, or a few random bytes. */
const insertBytes = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...TOKENS) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 16 }) },
);

/** Edits for a text or binary input, from a corpus of `donors` slices can be spliced from. */
export function byteEdit(donors: number): fc.Arbitrary<ByteEdit> {
  return fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: position, byte: fc.nat({ max: 255 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: position, bytes: insertBytes }),
    fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.nat({ max: 4096 }) }),
    fc.record({
      kind: fc.constant('copy' as const),
      from: position,
      length: fc.nat({ max: 4096 }),
      to: position,
    }),
    fc.record({
      kind: fc.constant('repeat' as const),
      at: position,
      length: fc.integer({ min: 1, max: 64 }),
      times: fc.integer({ min: 2, max: 4096 }),
    }),
    fc.record({
      kind: fc.constant('splice' as const),
      donor: fc.nat({ max: Math.max(0, donors - 1) }),
      from: position,
      length: fc.nat({ max: 8192 }),
      to: position,
    }),
    fc.record({
      kind: fc.constant('int' as const),
      at: position,
      width: fc.constantFrom(2 as const, 4 as const, 8 as const),
      value: fc.oneof(
        fc.constantFrom(
          0n,
          1n,
          0x7fn,
          0x80n,
          0xffn,
          0x7fffn,
          0xffffn,
          0x7fffffffn,
          0xffffffffn,
          2n ** 64n - 1n,
        ),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      ),
      big: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('truncate' as const), at: position }),
  );
}

/** Apply edits to bytes; `donors` are the corpus inputs slices may come from. */
export function applyByteEdits(input: Uint8Array, edits: readonly ByteEdit[], donors: readonly Uint8Array[]) {
  let b = Buffer.from(input);
  const mod = (n: number, m: number) => (m <= 0 ? 0 : n % m);
  for (const e of edits) {
    switch (e.kind) {
      case 'set':
        if (b.length) b[mod(e.at, b.length)] = e.byte;
        break;
      case 'insert': {
        const at = mod(e.at, b.length + 1);
        b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]);
        break;
      }
      case 'delete': {
        const at = mod(e.at, b.length + 1);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.length)]);
        break;
      }
      case 'copy': {
        const from = mod(e.from, b.length + 1);
        const slice = Buffer.from(b.subarray(from, from + e.length));
        const to = mod(e.to, b.length + 1);
        b = Buffer.concat([b.subarray(0, to), slice, b.subarray(to)]);
        break;
      }
      case 'repeat': {
        const at = mod(e.at, b.length + 1);
        const slice = b.subarray(at, at + e.length);
        if (slice.length === 0) break;
        const times = Math.min(e.times, Math.floor((1 << 20) / slice.length));
        b = Buffer.concat([b.subarray(0, at), ...Array.from({ length: times }, () => slice), b.subarray(at)]);
        break;
      }
      case 'splice': {
        const donor = donors[mod(e.donor, donors.length)] ?? new Uint8Array();
        const from = mod(e.from, donor.length + 1);
        const to = mod(e.to, b.length + 1);
        b = Buffer.concat([b.subarray(0, to), donor.subarray(from, from + e.length), b.subarray(to)]);
        break;
      }
      case 'int': {
        if (b.length < e.width) break;
        const at = mod(e.at, b.length - e.width + 1);
        const value = e.value & ((1n << BigInt(8 * e.width)) - 1n);
        if (e.width === 2) e.big ? b.writeUInt16BE(Number(value), at) : b.writeUInt16LE(Number(value), at);
        else if (e.width === 4)
          e.big ? b.writeUInt32BE(Number(value), at) : b.writeUInt32LE(Number(value), at);
        else e.big ? b.writeBigUInt64BE(value, at) : b.writeBigUInt64LE(value, at);
        break;
      }
      case 'truncate':
        b = b.subarray(0, mod(e.at, b.length + 1));
        break;
    }
  }
  return b;
}

/** A corpus item and the edits made to it. */
export interface Mutated {
  index: number;
  edits: ByteEdit[];
}

/** A corpus index with up to `maxEdits` edits (none at times: the real input itself). */
export function mutatedInput(corpusSize: number, maxEdits = 8): fc.Arbitrary<Mutated> {
  return fc.record({
    index: fc.nat({ max: corpusSize - 1 }),
    edits: fc.array(byteEdit(corpusSize), { maxLength: maxEdits }),
  });
}

/** Edits of a JSON value: the node at `at` (in document order) replaced, removed, or given a new key. */
export type JsonEdit =
  | { kind: 'replace'; at: number; value: unknown }
  | { kind: 'remove'; at: number }
  | { kind: 'add'; at: number; key: string; value: unknown }
  | { kind: 'duplicate'; at: number };

/** Values that stress validators: wrong types, boundaries, paths that escape, huge and odd strings. */
const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1,
    0.5,
    -0,
    1e308,
    -1e308,
    2 ** 53,
    2 ** 31,
    '',
    ' ',
    '.',
    '..',
    '/',
    '//',
    '../../etc/passwd',
    '/..',
    '/tmp/../..',
    'a/../../b',
    '\u0000',
    '\n',
    'C:\\x',
    '~',
    '$HOME',
    ['$', '{ORIGIN}'].join(''),
    'x'.repeat(5000),
    '2KiB',
    '32GiB',
    '-1GiB',
    '0x10',
    'sha256:',
    `sha256:${'0'.repeat(64)}`,
    `blake2b512-trunc128:${'f'.repeat(32)}`,
    'file:///',
    'http://127.0.0.1:1/',
    'javascript:1',
    [],
    {},
    [null],
    { '': null },
    JSON.parse('{"__proto__": {"polluted": true}}'),
  ),
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.jsonValue({ maxDepth: 2 }),
);

export function jsonEdit(keys: readonly string[]): fc.Arbitrary<JsonEdit> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant('replace' as const), at: position, value: nastyValue }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), at: position }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('add' as const),
        at: position,
        key: fc.oneof(fc.constantFrom(...keys, '__proto__', 'constructor', ''), fc.string({ maxLength: 8 })),
        value: nastyValue,
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), at: position }) },
  );
}

type Slot = { parent: Record<string, unknown> | unknown[]; key: string | number };

function slots(value: unknown, out: Slot[] = []): Slot[] {
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push({ parent: value, key: i });
      slots(v, out);
    });
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.push({ parent: value as Record<string, unknown>, key: k });
      slots(v, out);
    }
  }
  return out;
}

/** Apply edits to a deep copy of a JSON value. */
export function applyJsonEdits(input: unknown, edits: readonly JsonEdit[]): unknown {
  const root = { value: structuredClone(input) as unknown };
  for (const e of edits) {
    const all: Slot[] = [
      { parent: root as unknown as Record<string, unknown>, key: 'value' },
      ...slots(root.value),
    ];
    const slot = all[e.at % all.length] as Slot;
    const parent = slot.parent as Record<string | number, unknown>;
    const current = parent[slot.key];
    switch (e.kind) {
      case 'replace':
        parent[slot.key] = structuredClone(e.value);
        break;
      case 'remove':
        if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1);
        else if (slot.parent !== (root as unknown)) delete parent[slot.key];
        break;
      case 'add':
        if (Array.isArray(current)) current.push(structuredClone(e.value));
        else if (current && typeof current === 'object')
          Object.defineProperty(current, e.key, {
            value: structuredClone(e.value),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        break;
      case 'duplicate':
        if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 0, structuredClone(current));
        break;
    }
  }
  return root.value;
}

/**
 * Reduced inputs of bugs the fuzzer found, by target: each is replayed first on every fuzz run, so a bug once
 * fixed stays fixed. An entry is a corpus index (see targets.ts) and the edits made to it.
 */
const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));

export const REGRESSIONS: Record<string, unknown[]> = {
  diagnose: [
    // A line of ~64 KiB without a space, colon, quote or parenthesis, in a line the rules look at ("KVM"): the
    // loader-message patterns were quadratic in it (2.8 s for 24 KB, minutes at the 64 KiB line limit).
    {
      index: 0,
      edits: [
        { kind: 'insert', at: 0, bytes: bytes(`KVM internal error${'CHILD_SETT'.repeat(4)}\n`) },
        { kind: 'repeat', at: 18, length: 40, times: 1700 },
      ],
      format: 'nanos',
    },
  ],
  strace: [
    // A relative starting folder: each chdir("..") made a longer "../../.." to normalise (minutes at 10 000).
    {
      index: 0,
      edits: [
        { kind: 'insert', at: 0, bytes: bytes('chdir("..") = 0\n') },
        { kind: 'repeat', at: 0, length: 16, times: 4000 },
      ],
      cuts: [],
      cwd: 'relative',
      pseudo: false,
    },
    // A directory opened relative to itself again and again: the tracked path grew by each line, and each line
    // cost its whole length.
    {
      index: 0,
      edits: [
        { kind: 'insert', at: 0, bytes: bytes('openat(4, "set/one.bin", O_DIRECTORY) = 4\n') },
        { kind: 'repeat', at: 0, length: 42, times: 8000 },
        { kind: 'insert', at: 0, bytes: bytes('openat(AT_FDCWD, "/opt/data", O_RDONLY|O_DIRECTORY) = 4\n') },
      ],
      cuts: [],
      cwd: '/work/x',
      pseudo: true,
    },
  ],
  recipe: [
    // A recipe file holding JSON null (or a list, a number): the loader read `.resources` of it, a TypeError
    // (exit 70) instead of E_CONFIG. Came in with the recipe checks; found by this suite when they met it.
    { index: 0, json: [{ kind: 'replace', at: 0, value: null }], bytes: [] },
    { index: 0, json: [{ kind: 'replace', at: 0, value: [1, 2] }], bytes: [] },
  ],
  manifest: [
    // Nesting deeper than the stack: the recursive tuple parser died of a RangeError.
    { index: 0, edits: [{ kind: 'insert', at: 0, bytes: bytes('(a:'.repeat(20_000)) }] },
    // A `)` inside a list: read as an empty value again and again, until V8 died growing the array.
    { index: 0, edits: [{ kind: 'insert', at: 0, bytes: bytes('(a:[x)') }] },
  ],
};

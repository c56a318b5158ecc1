/**
 * What was in the image a log came from: its files (guest path -> host path),
 * its mounts and its manifest flags. Diagnosis uses it to say "the library is
 * in the image, but at /lib64 where dlopen does not look" or "the volume at
 * /data is declared but was empty".
 *
 * It can be read from a Nanos manifest in either of two forms: the tuple text
 * `mkfs` reads (`(children:(...) program:/x)`), or the dump `ops build
 * --show-debug` prints, which a run record keeps as manifest.txt (Go's `%+v`
 * of Ops's manifest: `&{root:map[children:map[...] program:/x] boot:...}`).
 * A package can build one directly.
 */
import { UniproveError } from '../errors.js';

export interface ImageMount {
  /** Volume label (`zkdata`). */
  volume: string;
  /** Where it is mounted in the guest (`/data`). */
  path: string;
  readonly: boolean;
}

export interface ImageContents {
  /** Guest path -> host path it was copied from (undefined when unknown). */
  files: Map<string, string | undefined>;
  mounts: ImageMount[];
  /** Top-level manifest flags, such as debug_exit, exec_protection, reboot_on_exit. */
  flags: Record<string, string>;
}

type TupleValue = string | TupleValue[] | { [key: string]: TupleValue };

/**
 * Deepest nesting read: a folder level is two (its node and its children), so this is a tree 250 folders deep.
 * Parsing recurses, and nesting past the stack was a RangeError (a crash) rather than a bad manifest.
 */
const MAX_DEPTH = 500;

/** Parse Nanos's tuple text: `(key:value key:(...) key:[a b])`. */
function parseTuple(text: string): TupleValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new UniproveError('E_CONFIG', {
      message: `manifest: ${what} at offset ${i}`,
      hint: 'Give a Nanos manifest as Ops writes it (ops build --show-debug / mkfs input).',
    });
  };
  const skip = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const word = (stops: RegExp) => {
    const start = i;
    if (text[i] === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      return text.slice(start + 1, i - 1).replace(/\\(.)/g, '$1');
    }
    while (i < text.length && !stops.test(text[i]!)) i++;
    return text.slice(start, i);
  };
  let depth = 0;
  const value = (): TupleValue => {
    skip();
    if ((text[i] === '(' || text[i] === '[') && depth >= MAX_DEPTH)
      fail(`nested deeper than ${MAX_DEPTH} levels`);
    depth++;
    try {
      return nested();
    } finally {
      depth--;
    }
  };
  const nested = (): TupleValue => {
    if (text[i] === '(') {
      i++;
      // No prototype: a key named __proto__ is a key like any other.
      const out: { [key: string]: TupleValue } = Object.create(null);
      for (;;) {
        skip();
        if (i >= text.length) fail('unclosed (');
        if (text[i] === ')') {
          i++;
          return out;
        }
        const key = word(/[\s:()[\]]/);
        if (!key || text[i] !== ':') fail(`expected key:value`);
        i++;
        out[key] = value();
      }
    }
    if (text[i] === '[') {
      i++;
      const out: TupleValue[] = [];
      for (;;) {
        skip();
        if (i >= text.length) fail('unclosed [');
        if (text[i] === ']') {
          i++;
          return out;
        }
        const at = i;
        out.push(value());
        // A `)` in a list is no value: reading none and going round again was an endless loop.
        if (i === at) fail(`unexpected ${text[i]}`);
      }
    }
    return word(/[\s()[\]]/);
  };
  const result = value();
  return result;
}

/**
 * Read the files, mounts and flags of an image from its Nanos manifest text: the tuple text, or Ops's dump of it
 * (a run record's manifest.txt).
 */
export function parseNanosManifest(text: string): ImageContents {
  const body = text.trimStart();
  if (body.startsWith('&{') || body.startsWith('{')) return contentsOfOpsDump(body);
  const root = parseTuple(text);
  if (typeof root !== 'object' || Array.isArray(root)) {
    throw new UniproveError('E_CONFIG', { message: 'manifest: the top level is not a tuple' });
  }
  const files = new Map<string, string | undefined>();
  const walk = (children: TupleValue, dir: string) => {
    if (typeof children !== 'object' || Array.isArray(children)) return;
    for (const [name, node] of Object.entries(children)) {
      if (typeof node !== 'object' || Array.isArray(node)) continue;
      const path = `${dir}/${name}`;
      if (node.children !== undefined) walk(node.children, path);
      else {
        const contents = node.contents;
        const host =
          typeof contents === 'object' && !Array.isArray(contents) && typeof contents.host === 'string'
            ? contents.host
            : undefined;
        files.set(path, host);
      }
    }
  };
  if (root.children !== undefined) walk(root.children, '');
  const mounts: ImageMount[] = [];
  if (typeof root.mounts === 'object' && !Array.isArray(root.mounts)) {
    for (const [volume, spec] of Object.entries(root.mounts)) {
      if (typeof spec !== 'string') continue;
      const [path = '', ...opts] = spec.split(':');
      mounts.push({ volume, path, readonly: opts.includes('ro') });
    }
  }
  const flags: Record<string, string> = {};
  for (const [key, value] of Object.entries(root)) if (typeof value === 'string') flags[key] = value;
  return { files, mounts, flags };
}

/** A value of Ops's dump: a string, a list, a map (a folder, or the environment), or a struct (a symlink). */
type DumpValue = string | DumpValue[] | DumpRecord;

interface DumpRecord {
  kind: 'map' | 'struct';
  entries: Map<string, DumpValue>;
}

/**
 * Parse Go's `%+v` text of Ops's manifest: `map[k:v ...]`, `[a b]`, `{field:v ...}`, strings unquoted.
 * Go does not quote strings, so a value runs to the next ` key:` or the bracket that closes its container; a
 * file name with a space, or a value with a space before a word and a colon, cannot be told apart.
 */
function parseOpsDump(text: string): DumpValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new UniproveError('E_CONFIG', {
      message: `manifest: ${what} at offset ${i} of the Ops manifest dump`,
      hint: "Give the run record's manifest.txt as uniprove wrote it (the Manifest: part of ops build --show-debug), or a Nanos manifest.",
    });
  };
  const skip = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  /** Does a ` key:` start at j (a word with no space or bracket, then a colon)? */
  const keyAt = (j: number) => /^[^\s:[\]{}]+:/.test(text.slice(j, j + 4096));
  let depth = 0;
  /** One value; `close` ends its container, and in a list (`inList`) any space ends a string. */
  const value = (close: string, inList: boolean): DumpValue => {
    if (text.startsWith('map[', i) || text.startsWith('&{', i) || text[i] === '[' || text[i] === '{') {
      if (depth >= MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
      depth++;
      try {
        return nested();
      } finally {
        depth--;
      }
    }
    const start = i;
    while (i < text.length && text[i] !== close) {
      if (/\s/.test(text[i]!) && (inList || keyAt(i + 1))) break;
      i++;
    }
    return text.slice(start, i);
  };
  const record = (kind: DumpRecord['kind'], close: string): DumpRecord => {
    const entries = new Map<string, DumpValue>();
    for (;;) {
      skip();
      if (i >= text.length) fail(`unclosed ${kind === 'map' ? 'map[' : '{'}`);
      if (text[i] === close) {
        i++;
        return { kind, entries };
      }
      const colon = text.indexOf(':', i);
      const key = colon === -1 ? '' : text.slice(i, colon);
      if (!key || /[\s[\]{}]/.test(key)) fail('expected key:value');
      i = colon + 1;
      entries.set(key, value(close, false));
    }
  };
  const nested = (): DumpValue => {
    if (text.startsWith('map[', i)) {
      i += 4;
      return record('map', ']');
    }
    if (text[i] === '&' || text[i] === '{') {
      i += text[i] === '&' ? 2 : 1;
      return record('struct', '}');
    }
    i++;
    const out: DumpValue[] = [];
    for (;;) {
      skip();
      if (i >= text.length) fail('unclosed [');
      if (text[i] === ']') {
        i++;
        return out;
      }
      const at = i;
      out.push(value(']', true));
      // A `}` in a list is no value: reading none and going round again would never end.
      if (i === at) fail(`unexpected ${text[i]}`);
    }
  };
  skip();
  const result = value('', false);
  skip();
  if (i < text.length) fail('text after the manifest');
  return result;
}

/** The image contents in Ops's dump: folders are maps, files strings (their host path), symlinks structs. */
function contentsOfOpsDump(text: string): ImageContents {
  const top = parseOpsDump(text);
  const root = typeof top === 'object' && !Array.isArray(top) ? top.entries.get('root') : undefined;
  if (typeof root !== 'object' || Array.isArray(root) || root.kind !== 'map') {
    throw new UniproveError('E_CONFIG', {
      message: 'manifest: the Ops manifest dump has no root:map[...]',
      hint: "Give the run record's manifest.txt as uniprove wrote it, or a Nanos manifest.",
    });
  }
  const files = new Map<string, string | undefined>();
  const walk = (folder: DumpRecord, dir: string) => {
    for (const [name, node] of folder.entries) {
      const path = `${dir}/${name}`;
      if (typeof node === 'string') files.set(path, node || undefined);
      else if (Array.isArray(node)) continue;
      else if (node.kind === 'map') walk(node, path);
      else files.set(path, undefined); // a symlink: {path:target}
    }
  };
  const children = root.entries.get('children');
  if (typeof children === 'object' && !Array.isArray(children) && children.kind === 'map') walk(children, '');
  const mounts: ImageMount[] = [];
  const declared = root.entries.get('mounts');
  if (typeof declared === 'object' && !Array.isArray(declared)) {
    for (const [volume, spec] of declared.entries) {
      if (typeof spec !== 'string') continue;
      const [path = '', ...opts] = spec.split(':');
      mounts.push({ volume, path, readonly: opts.includes('ro') });
    }
  }
  const flags: Record<string, string> = {};
  for (const [key, value] of root.entries) if (typeof value === 'string') flags[key] = value;
  return { files, mounts, flags };
}

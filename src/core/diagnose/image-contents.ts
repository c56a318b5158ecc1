/**
 * What was in the image a log came from: its files (guest path -> host path),
 * its mounts and its manifest flags. Diagnosis uses it to say "the library is
 * in the image, but at /lib64 where dlopen does not look" or "the volume at
 * /data is declared but was empty".
 *
 * It can be read from a Nanos manifest (the tuple format Ops generates and
 * `mkfs` reads); a package can build one directly.
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

/** Read the files, mounts and flags of an image from its Nanos manifest text. */
export function parseNanosManifest(text: string): ImageContents {
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

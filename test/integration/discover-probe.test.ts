import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { discover } from '../../src/core/discover/index.js';
import { tempDir } from '../helpers/tmp.js';
import { findTool, needTool } from '../helpers/tools.js';

/** The interpreter itself (python3 on PATH may be a pyenv shell shim, not an ELF). */
function realPython(): string | undefined {
  const python = findTool('python3');
  if (!python) return undefined;
  try {
    return execFileSync(python, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

const python = realPython();
const skip =
  needTool('strace', 'apt-get install strace') ??
  (python ? undefined : needTool('python3', 'apt-get install python3'));

test('the default probe (no stat tracing) still lists the .py source behind a cached .pyc', {
  skip,
}, async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'zkmod.py'), 'VALUE = 7\n');
  // Write __pycache__/zkmod.cpython-XY.pyc (py_compile does even under PYTHONDONTWRITEBYTECODE); the
  // probed run then opens only that and stats zkmod.py, which Python needs: without the source
  // the cached file is ignored.
  execFileSync(python!, ['-m', 'py_compile', 'zkmod.py'], { cwd: dir });
  const result = await discover({
    binary: python!,
    args: ['-c', 'import zkmod; assert zkmod.VALUE == 7'],
    cwd: dir,
    env: { PYTHONPATH: dir },
  });
  const paths = result.files.map((f) => f.path);
  assert.ok(
    paths.some((p) => p.startsWith(join(dir, '__pycache__/zkmod.'))),
    'the .pyc it opened',
  );
  assert.ok(paths.includes(join(dir, 'zkmod.py')), 'the source it only stat-ed');
  assert.ok(!paths.includes(join(dir, '__pycache__')), 'no folders');
});

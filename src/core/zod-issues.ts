/** Zod's issues as the `path: message` lines every config error in uniprove prints. */
import type { z } from 'zod';

/** One problem found in a config, with the dot-path of the field. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** Turn zod issues into dot-path messages (`RunConfig.CPUs: expected number`). */
export function formatZodIssues(error: z.ZodError, prefix = ''): ConfigIssue[] {
  return error.issues.map((issue) => {
    const parts = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    const path = `${prefix}${parts}`.replace(/^\./, '') || '(root)';
    if (issue.code === 'unrecognized_keys') {
      return { path, message: `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}` };
    }
    return { path, message: issue.message };
  });
}

#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

const code = await main(process.argv.slice(2));
process.exitCode = code;
// After Ctrl-C, main has stopped what it started, cleaned up and said so: nothing may keep the process alive
// then, not even a socket a client library leaves open when its stream is destroyed (an interrupted upload to
// Cloud Storage keeps its request open). On Linux stdout and stderr are written synchronously to files, pipes
// and TTYs, so nothing printed is lost.
if (code === 130) process.exit(code);

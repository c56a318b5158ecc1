/** `uniprove gcp image|run|ls|gc`: Compute Engine images, runs, and cleanup of what uniprove made. */
import type { Command } from 'commander';
import type { CliContext } from '../../context.js';
import { registerGc } from './gc.js';
import { registerImage } from './image.js';
import { registerLs } from './ls.js';
import { registerRun } from './run.js';

/** Register `uniprove gcp`. */
export function register(program: Command, ctx: CliContext): void {
  const gcp = program
    .command('gcp')
    .description('Run prover images on Google Compute Engine, from upload to proof, leaving nothing running')
    .addHelpText(
      'after',
      `
Credentials are Application Default Credentials (\`gcloud auth application-default login\`, or
GOOGLE_APPLICATION_CREDENTIALS), or an access token in CLOUDSDK_AUTH_ACCESS_TOKEN. Everything uniprove
creates carries the label uniprove=1: \`uniprove gcp ls\` lists it, \`uniprove gcp gc\` deletes it.
Every command takes --dry-run (image, run: prints each API call with its body, needs no credentials).

  $ uniprove gcp run demo --dry-run                                 the calls a recipe run makes
  $ uniprove gcp run benchy --machine-type n2-standard-16 --spot     package, build, upload, prove
  $ uniprove gcp image demo                                         import a recipe's image, reused
  $ uniprove gcp image --image-file disk.raw --name benchy          upload once, reused by digest
  $ uniprove gcp run --image-file disk.raw --machine-type n2-standard-8 --spot --dry-run
  $ uniprove gcp run --image uniprove-img-benchy-0123456789ab --cpus 8 --memory 32
  $ uniprove gcp ls                                                 what is left in the project?
  $ uniprove gcp gc --older-than 1d                                 delete leftovers`,
    );

  registerImage(gcp, ctx);
  registerRun(gcp, ctx);
  registerLs(gcp, ctx);
  registerGc(gcp, ctx);
}

/** Every machine driver by name (`RunRecord.via`), each module loaded only when chosen. */
import type { DriverName, MachineDriver } from '../driver.js';

/** The options each driver takes. */
export interface DriverOptions {
  qemu: import('./local.js').LocalRunOptions;
  ops: import('./local.js').LocalRunOptions;
  gce: import('./gce.js').GceDriverOptions;
}

/** A driver by name; its module is loaded only when chosen (a local run never loads the cloud clients). */
export async function createDriver<N extends DriverName>(
  name: N,
  options: DriverOptions[N],
): Promise<MachineDriver> {
  switch (name) {
    case 'qemu':
      return new (await import('./qemu.js')).QemuDriver(options as DriverOptions['qemu']);
    case 'ops':
      return new (await import('./ops.js')).OpsDriver(options as DriverOptions['ops']);
    default:
      return new (await import('./gce.js')).GceDriver(options as DriverOptions['gce']);
  }
}

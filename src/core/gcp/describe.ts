/** What a Compute Engine run's record says before anything runs, for every gcp front end alike. */
import type { RunRecord } from '../record/record.js';

/** Where it runs: Compute Engine's machine type and zone, and what else the front end knows (a fleet's input). */
export function describeGce(record: RunRecord, machineType: string, zone: string, more?: string): void {
  record.accel = 'gce';
  record.accelReason = `Compute Engine ${machineType} in ${zone}${more ? `: ${more}` : ''}`;
}

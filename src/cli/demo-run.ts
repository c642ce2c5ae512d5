/**
 * `uiommu demo`: two of our example C programs run unmodified under
 * `uiommu run`, each syscall they make on an emulated file printed as a
 * decoded trace line between the program's own output: the native iommufd
 * flow on the x86 preset (cdev bind, IOAS, HWPT, map, DMA) and the SPAPR TCE
 * v2 dynamic-window flow on the powernv preset.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type BackendFactory, PACKAGE_ROOT, runProgram } from './run.ts';

const EXAMPLES: readonly { host: string; name: string }[] = [
  { host: 'x86', name: 'iommufd-cdev' },
  { host: 'powernv', name: 'spapr-ddw' },
];

/** Runs the examples in turn; resolves to the first non-zero exit status, or 0. */
export async function runExamplesDemo(
  backends: BackendFactory,
  print: (line: string) => void,
): Promise<number> {
  for (const { host, name } of EXAMPLES) {
    const program = join(PACKAGE_ROOT, 'native/build/examples', name);
    if (!existsSync(program)) {
      print(`uiommu demo: ${program} is missing (build it: make -C native)`);
      return 1;
    }
    print(`$ uiommu run --host ${host} --trace - -- native/build/examples/${name}`);
    const status = await runProgram(
      [program],
      { host, traceTo: (text) => process.stdout.write(text) },
      backends,
    );
    print(`(exit status ${status})\n`);
    if (status !== 0) return status;
  }
  return 0;
}

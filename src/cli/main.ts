import { Command } from 'commander';
import { runDemo } from './demo.ts';
import { runPowerDemo } from './demo-power.ts';
import { runExamplesDemo } from './demo-run.ts';
import { type BackendFactory, runProgram, unreachableProcesses } from './run.ts';

/** How the engine reaches the real processes `uiommu run` serves: their memory and eventfds. */
const backends: BackendFactory = unreachableProcesses;

const program = new Command('uiommu')
  .description('Linux IOMMUFD and VFIO in user space, errno-exact')
  .version('0.1.0')
  .enablePositionalOptions();

program
  .command('demo')
  .description(
    'run the example C clients (iommufd cdev on x86, SPAPR dynamic windows on POWER) under uiommu run, with their decoded syscalls',
  )
  .option('--in-process', 'run the TypeScript VMM-like clients in-process instead')
  .action(async (opts: { inProcess?: boolean }) => {
    const print = (line: string) => console.log(line);
    if (!opts.inProcess) {
      process.exitCode = await runExamplesDemo(backends, print);
      return;
    }
    const x86 = runDemo(print);
    print('');
    process.exitCode = x86 || runPowerDemo(print);
  });

program
  .command('run')
  .description(
    'run PROGRAM unmodified against the emulated kernel (through the preload library); exits with its status',
  )
  .option('--host <preset|file>', 'host topology: a preset name or a JSON config', 'x86')
  .option('--trace <file|->', 'write one strace-like line per call to FILE (- for stderr)')
  .option('--trace-json <file>', 'write one JSON record per call to FILE')
  .argument('<program>', 'the program to run')
  .argument('[args...]', 'its arguments (put -- before PROGRAM when they start with -)')
  .passThroughOptions()
  .action(
    async (
      prog: string,
      args: string[],
      opts: { host: string; trace?: string; traceJson?: string },
    ) => {
      process.exitCode = await runProgram([prog, ...args], opts, backends);
    },
  );

await program.parseAsync();

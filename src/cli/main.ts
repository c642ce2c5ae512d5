import { Command, InvalidArgumentError } from 'commander';
import { Errno } from '../abi/errno.ts';
import type { KernelPersonality } from '../host/kernel.ts';
import { eventfdPollSync } from '../host/poll-sync.ts';
import { remoteFileOps } from '../host/remote-file.ts';
import { RemoteMm } from '../host/remote-mm.ts';
import {
  DEFAULT_KERNEL_VERSION,
  isKernelVersion,
  KERNEL_VERSIONS,
  type KernelVersion,
} from '../host/versions.ts';
import { GRANTABLE_CAPS, type GrantableCap } from '../server/creds.ts';
import { runDemo } from './demo.ts';
import { runPowerDemo } from './demo-power.ts';
import { runExamplesDemo } from './demo-run.ts';
import { launchedBy } from './launched.ts';
import { parsePersonalitySetting } from './personality-option.ts';
import { type BackendFactory, runProgram } from './run.ts';

/**
 * How the engine reaches the real processes `uiommu run` serves, always
 * through the handle bound to the process at its connection: their memory
 * (its /proc/<pid>/mem, page identity from its maps), their eventfds
 * (pidfd_getfd) and the real fds they hand to ioctls.
 */
const backends: BackendFactory = (kernel) => ({
  mmFor: (handle) => new RemoteMm(handle, kernel.memory),
  pollSync: eventfdPollSync,
  foreignFile(handle, fd) {
    try {
      return remoteFileOps(handle, fd, kernel.memory);
    } catch (e) {
      if (e instanceof Errno) return undefined;
      throw e;
    }
  },
});

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
  .option(
    '--cap-add <capability>',
    `let the program hold a capability in the emulated kernel's eyes (${GRANTABLE_CAPS.join(', ')}); repeatable`,
    (v: string, acc: GrantableCap[]) => {
      if (!(GRANTABLE_CAPS as readonly string[]).includes(v)) {
        throw new InvalidArgumentError(`one of ${GRANTABLE_CAPS.join(', ')}`);
      }
      return [...acc, v as GrantableCap];
    },
    [],
  )
  .option(
    '--kernel <version>',
    `answer as this Linux version (${KERNEL_VERSIONS.join(', ')}): its profile sets every version-dependent behaviour`,
    (v: string) => {
      if (!isKernelVersion(v))
        throw new InvalidArgumentError(`one of ${KERNEL_VERSIONS.join(', ')}`);
      return v;
    },
    DEFAULT_KERNEL_VERSION,
  )
  .option(
    '--personality <name=value>',
    "one version-dependent setting over the --kernel profile's (docs/personality.md); repeatable",
    parsePersonalitySetting,
    {},
  )
  .option('--trace <file|->', 'write one strace-like line per call to FILE (- for stderr)')
  .option('--trace-json <file>', 'write one JSON record per call to FILE')
  .option('--no-warn', 'leave the warnings (docs/warnings.md) out of the trace')
  .option(
    '--ui',
    'serve a live view of the emulated kernel on 127.0.0.1 (its URL, with a token, goes to stderr)',
  )
  .option(
    '--dump-state <file>',
    'write the emulated kernel state as JSON to FILE at exit and on SIGUSR1',
  )
  .argument('<program>', 'the program to run')
  .argument('[args...]', 'its arguments (put -- before PROGRAM when they start with -)')
  .passThroughOptions()
  .action(
    async (
      prog: string,
      args: string[],
      opts: {
        host: string;
        trace?: string;
        traceJson?: string;
        warn: boolean;
        ui?: boolean;
        dumpState?: string;
        kernel: KernelVersion;
        personality: Partial<KernelPersonality>;
        capAdd: GrantableCap[];
      },
    ) => {
      const launched = launchedBy(process.env);
      process.exitCode = await runProgram(
        [prog, ...args],
        launched ? { ...opts, launched } : opts,
        backends,
      );
    },
  );

// no top-level await: the bundle is CommonJS (bin/uiommu.js)
void program.parseAsync();

import { Command } from 'commander';
import { runDemo } from './demo.ts';
import { runPowerDemo } from './demo-power.ts';

const program = new Command('uiommu')
  .description('Linux IOMMUFD and VFIO in user space, errno-exact')
  .version('0.1.0');

program
  .command('demo')
  .description(
    'run in-process VMM-like clients (x86 iommufd, POWER SPAPR) and print their decoded syscalls',
  )
  .action(() => {
    const print = (line: string) => console.log(line);
    const x86 = runDemo(print);
    print('');
    process.exitCode = x86 || runPowerDemo(print);
  });

await program.parseAsync();

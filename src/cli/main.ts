import { Command } from 'commander';
import { runDemo } from './demo.ts';

const program = new Command('uiommu')
  .description('Linux IOMMUFD and VFIO in user space, errno-exact')
  .version('0.1.0');

program
  .command('demo')
  .description(
    'run an in-process VMM-like client against /dev/iommu and print its decoded syscalls',
  )
  .action(() => {
    process.exitCode = runDemo((line) => console.log(line));
  });

await program.parseAsync();

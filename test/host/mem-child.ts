/**
 * A real process for the host tests: a small C program (compiled on first
 * use into the temp dir) that maps a memfd twice (and its page 2 a third
 * time, read-only), shared and private
 * anonymous memory, a read-only page, a PROT_NONE page, a hole, 1 TiB of
 * reserved address space, (when the host has huge pages) a hugetlb
 * mapping, forks a child sharing all of it, maps a second memfd (sealed
 * against shrinking and growing, its seals may still change), prints the
 * addresses and then obeys one-letter commands on stdin: `k` kills the
 * forked child, `u` unmaps and closes the memfd, `w` unmaps the sealed
 * memfd and seals it against writing (answering its errno name if that
 * fails); end of input exits.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ProcHandle } from '../../src/host/proc-handle.ts';

export const PAGE = 0x1000n;

const SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define PS 4096L
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static unsigned long map(size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, off);
	return p == MAP_FAILED ? 0 : (unsigned long)p;
}

int main(void)
{
	int mfd = memfd_create("uiommu-test", 0);
	if (mfd < 0 || ftruncate(mfd, 4 * PS) < 0)
		return 1;
	unsigned long m1 = map(4 * PS, RW, MAP_SHARED, mfd, 0);
	unsigned long m2 = map(2 * PS, RW, MAP_SHARED, mfd, 2 * PS);
	unsigned long mr = map(PS, PROT_READ, MAP_SHARED, mfd, 2 * PS);
	unsigned long sh = map(2 * PS, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned long pv = map(2 * PS, RW, ANON, -1, 0);
	unsigned long ro = map(PS, PROT_READ, ANON, -1, 0);
	unsigned long none = map(PS, PROT_NONE, ANON, -1, 0);
	unsigned long hole = map(3 * PS, RW, ANON, -1, 0);
	unsigned long big = map(1UL << 40, PROT_READ, ANON | MAP_NORESERVE, -1, 0);
	unsigned long hs = map(2UL << 20, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	int efd = eventfd(0, EFD_NONBLOCK), bfd = eventfd(0, 0);
	munmap((void *)(hole + PS), PS);
	strcpy((char *)m1 + 2 * PS, "memfd page 2");
	strcpy((char *)sh, "shared anon");
	strcpy((char *)pv, "private anon");
	pid_t parent = getpid(), kid = fork();
	if (kid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		for (;;)
			pause();
	}
	/* after the fork: a mapping in the child would keep the memfd writably mapped */
	int sfd = memfd_create("uiommu-sealed", MFD_ALLOW_SEALING);
	if (sfd < 0 || ftruncate(sfd, 2 * PS) < 0 ||
	    fcntl(sfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return 1;
	unsigned long sm = map(2 * PS, RW, MAP_SHARED, sfd, 0);
	strcpy((char *)sm, "sealed memfd");
	printf("pid=%d kid=%d m1=%lx m2=%lx mr=%lx sh=%lx pv=%lx ro=%lx none=%lx hole=%lx big=%lx "
	       "hs=%lx sm=%lx mfd=%d efd=%d bfd=%d sfd=%d\n",
	       parent, kid, m1, m2, mr, sh, pv, ro, none, hole, big, hs, sm, mfd, efd, bfd, sfd);
	fflush(stdout);
	char line[16];
	while (fgets(line, sizeof(line), stdin)) {
		if (line[0] == 'k') {
			kill(kid, SIGKILL);
			waitpid(kid, NULL, 0);
		} else if (line[0] == 'u') {
			munmap((void *)m1, 4 * PS);
			munmap((void *)m2, 2 * PS);
			munmap((void *)mr, PS);
			close(mfd);
		} else if (line[0] == 'w') {
			munmap((void *)sm, 2 * PS);
			if (fcntl(sfd, F_ADD_SEALS, F_SEAL_WRITE) < 0) {
				printf("%s\n", strerrorname_np(errno));
				fflush(stdout);
				continue;
			}
		}
		printf("ok\n");
		fflush(stdout);
	}
	kill(kid, SIGKILL);
	return 0;
}
`;

let binary: string | undefined;

const NATIVE = fileURLToPath(new URL('../../native/', import.meta.url));

/**
 * Build the engine addon when it is missing (a fresh checkout), into a
 * private directory first and renamed into place, so test files starting
 * at once never load a half-written one.
 */
function ensureAddon(): void {
  const target = path.join(NATIVE, 'build', 'uiommu_host.node');
  if (fs.existsSync(target)) return;
  const out = path.join(NATIVE, 'build', `tmp-${process.pid}`);
  fs.mkdirSync(out, { recursive: true });
  try {
    execFileSync('make', ['-s', '-C', NATIVE, `OUT=${out}`, `${out}/uiommu_host.node`]);
    fs.renameSync(path.join(out, 'uiommu_host.node'), target);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

/** Compile the program once per test process (cached by source hash in the temp dir). */
function build(): string {
  if (binary) return binary;
  const hash = createHash('sha256').update(SOURCE).digest('hex').slice(0, 12);
  const dir = path.join(os.tmpdir(), `uiommu-mem-child-${hash}`);
  const exe = path.join(dir, 'mem-child');
  if (!fs.existsSync(exe)) {
    fs.mkdirSync(dir, { recursive: true });
    const src = path.join(dir, 'mem-child.c');
    fs.writeFileSync(src, SOURCE);
    const tmp = `${exe}.${process.pid}`;
    execFileSync('cc', ['-O1', '-o', tmp, src]);
    fs.renameSync(tmp, exe);
  }
  binary = exe;
  return exe;
}

export interface MemChild {
  pid: number;
  /** The forked child, sharing every mapping. */
  kid: number;
  /** Mapping addresses by name (0n when the mapping could not be made). */
  at: Record<
    'm1' | 'm2' | 'mr' | 'sh' | 'pv' | 'ro' | 'none' | 'hole' | 'big' | 'hs' | 'sm',
    bigint
  >;
  /** fds in the process: the memfd, a non-blocking and a blocking eventfd, the sealed memfd. */
  fd: Record<'mfd' | 'efd' | 'bfd' | 'sfd', number>;
  /** Handles on the process and on its forked child (closed by `close`). */
  handle: ProcHandle;
  kidHandle: ProcHandle;
  /** Send a command letter and wait for its "ok". */
  command(letter: 'k' | 'u' | 'w'): Promise<void>;
  /** End the process and wait for its exit. */
  close(): Promise<void>;
}

/** Start the program (building it, and the engine addon if missing, first). */
export async function startMemChild(): Promise<MemChild> {
  ensureAddon();
  const proc = spawn(build(), [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error('mem-child exited early');
    return r.value;
  };
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const fields = Object.fromEntries((await next()).split(' ').map((kv) => kv.split('=')));
  const hex = (k: string) => BigInt(`0x${fields[k]}`);
  const handle = ProcHandle.ofPid(Number(fields.pid));
  const kidHandle = ProcHandle.ofPid(Number(fields.kid));
  return {
    handle,
    kidHandle,
    pid: Number(fields.pid),
    kid: Number(fields.kid),
    at: {
      m1: hex('m1'),
      m2: hex('m2'),
      mr: hex('mr'),
      sh: hex('sh'),
      pv: hex('pv'),
      ro: hex('ro'),
      none: hex('none'),
      hole: hex('hole'),
      big: hex('big'),
      hs: hex('hs'),
      sm: hex('sm'),
    },
    fd: {
      mfd: Number(fields.mfd),
      efd: Number(fields.efd),
      bfd: Number(fields.bfd),
      sfd: Number(fields.sfd),
    },
    async command(letter) {
      proc.stdin!.write(`${letter}\n`);
      const reply = await next();
      if (reply !== 'ok') throw new Error(`mem-child answered ${reply}`);
    },
    async close() {
      proc.stdin!.end();
      await exited;
      handle.close();
      kidHandle.close();
    },
  };
}

/** `length` bytes at `addr` of the process of `handle`, read through its /proc/<pid>/mem (tests' own look). */
export function peek(handle: ProcHandle, addr: bigint, length: number): Uint8Array {
  const fd = handle.openAt('mem');
  try {
    const out = Buffer.alloc(length);
    fs.readSync(fd, out, 0, length, addr);
    return new Uint8Array(out);
  } finally {
    fs.closeSync(fd);
  }
}

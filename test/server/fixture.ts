/**
 * Engine fixtures: a Kernel, an engine whose processes have SimMm address
 * spaces (kept per pid so tests can read and write them), a controllable
 * set of live pids for the reaper, a recording poll hook, and a client
 * that speaks requests to the engine directly.
 */
import { ERRNO, type ErrnoName } from '../../src/abi/errno.ts';
import type { Layout } from '../../src/abi/layout.ts';
import { Kernel, type KernelOptions } from '../../src/host/kernel.ts';
import { SimMm } from '../../src/host/sim-mm.ts';
import {
  type Connection,
  createEngine,
  type Engine,
  type EngineOptions,
  type PollSync,
} from '../../src/server/engine.ts';
import { OP, type Response } from '../../src/server/protocol.ts';

/** What the recording poll hook saw, in order: `attach 100:5`, `set 1 true`, `wake 1`, `release 1`. */
export interface PollLog {
  events: string[];
  /** Handle → current readiness. */
  ready: Map<number, boolean>;
}

export function recordingPollSync(): PollSync<number> & PollLog {
  let next = 1;
  const log: PollLog = { events: [], ready: new Map() };
  return {
    ...log,
    attach(pid, fd) {
      const h = next++;
      log.events.push(`attach ${pid}:${fd} -> ${h}`);
      return h;
    },
    set(h, ready) {
      log.events.push(`set ${h} ${ready}`);
      log.ready.set(h, ready);
    },
    wake(h) {
      log.events.push(`wake ${h}`);
    },
    release(h) {
      log.events.push(`release ${h}`);
      log.ready.delete(h);
    },
  };
}

export interface EngineFixture {
  kernel: Kernel;
  engine: Engine;
  /** The current address space of each pid (replaced at exec). */
  mms: Map<number, SimMm>;
  /** Pids the reaper sees as alive. */
  alive: Set<number>;
  /** A client connected as `pid` (HELLO sent; see `hello`). */
  client(pid: number, kind?: number, token?: bigint): TestClient;
}

export function engineFixture(
  opts: {
    kernel?: KernelOptions;
    /** A process image's address space (default: a plain SimMm). */
    newMm?: (kernel: Kernel) => SimMm;
  } & Partial<Omit<EngineOptions, 'kernel' | 'mmFor'>> = {},
): EngineFixture {
  const kernel = new Kernel(opts.kernel);
  const mms = new Map<number, SimMm>();
  const alive = new Set<number>();
  const engine = createEngine({
    pidAlive: (pid) => alive.has(pid),
    ...opts,
    kernel,
    mmFor(pid) {
      const mm = opts.newMm?.(kernel) ?? new SimMm(kernel.memory);
      mms.set(pid, mm);
      return mm;
    },
  });
  const f: EngineFixture = {
    kernel,
    engine,
    mms,
    alive,
    client(pid, kind = 0, token = 0n) {
      alive.add(pid);
      const c = new TestClient(f, pid);
      c.hello = c.req(OP.HELLO, [BigInt(kind), token]);
      return c;
    },
  };
  return f;
}

/** A decoded answer: `ret` as a number, the errno by name. */
export interface Answer {
  ret: number;
  errno: ErrnoName | undefined;
  newfd: number;
  payload: Uint8Array;
}

const NAMES = new Map<number, ErrnoName>(
  Object.entries(ERRNO).map(([k, v]) => [v, k as ErrnoName]),
);

export function answer(r: Response): Answer {
  return {
    ret: Number(r.ret),
    errno: r.err ? NAMES.get(r.err) : undefined,
    newfd: r.newfd,
    payload: r.payload ?? new Uint8Array(),
  };
}

/** One process's connection to the engine. */
export class TestClient {
  readonly conn: Connection;
  hello: Answer | undefined;
  private scratchVa = 0n;

  constructor(
    readonly f: EngineFixture,
    readonly pid: number,
    conn?: Connection,
  ) {
    this.conn = conn ?? f.engine.connect();
  }

  get mm(): SimMm {
    return this.f.mms.get(this.pid)!;
  }

  req(op: number, args: (bigint | number)[] = [], payload?: Uint8Array, tid = this.pid): Answer {
    const r = this.f.engine.handle(this.conn, {
      op,
      pid: this.pid,
      tid,
      args: args.map((a) => BigInt.asUintN(64, BigInt(a))),
      ...(payload ? { payload } : {}),
    });
    return answer(r);
  }

  open(fd: number, path: string, flags = 2): Answer {
    return this.req(OP.OPEN, [fd, flags], cstr(path));
  }

  /** A fresh read/write page-aligned buffer of `length` bytes in this process. */
  mem(length = 4096n): bigint {
    return this.mm.mmap({ length, prot: { read: true, write: true } });
  }

  /** Bytes at a scratch address (a fresh page per process image, reused). */
  scratch(data: Uint8Array): bigint {
    if (this.scratchVa === 0n || !this.mm.vmaAt(this.scratchVa))
      this.scratchVa = this.mem(1n << 16n);
    this.mm.write(this.scratchVa, data);
    return this.scratchVa;
  }

  /** IOCTL with a struct: encoded into this process's memory, decoded back. */
  call<V>(
    fd: number,
    request: number,
    layout: Layout<V>,
    value: Partial<V>,
    spare = -1,
  ): Answer & { out: V } {
    const withSize = layout.fields.some((x) => x.name === 'size');
    const v = withSize ? { size: layout.size, ...value } : value;
    const addr = this.scratch(layout.encode(v as Partial<V>));
    const a = this.req(OP.IOCTL, [fd, request, addr, spare]);
    return { ...a, out: layout.decode(this.mm.read(addr, layout.size)) };
  }

  disconnect(): void {
    this.f.engine.disconnect(this.conn);
  }
}

/** A NUL-terminated string. */
export function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

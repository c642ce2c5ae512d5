/**
 * The engine's server: the Unix socket transport (transport.ts) feeding the
 * one Engine. Each request frame is answered completely before the next is
 * looked at, so requests from all connections are handled one at a time;
 * connections take turns frame by frame — except a call the engine
 * restarts (Engine.serve answers a promise: work off the engine's thread):
 * its connection's later frames wait (a few at most) until it is answered,
 * and the others are served meanwhile. A payload over MAX_PAYLOAD is
 * answered with the kernel's errno for an oversized argument (see
 * `Engine.handle`). A reaper runs `engine.reap()` every 200 ms.
 *
 * @example
 * const server = await serveEngine(engine, join(dir, 'engine.sock'));
 * // ... the program runs with UIOMMU_SOCK pointing there ...
 * await server.close();
 */
import { rmSync } from 'node:fs';
import type { ProcHandle } from '../host/proc-handle.ts';
import type { Connection, Engine } from './engine.ts';
import {
  copyRequest,
  emptyRequest,
  encodeResponseInto,
  REQUEST_HEADER_SIZE,
  type Request,
  RequestReader,
} from './protocol.ts';
import { EV, openTransport, type Transport } from './transport.ts';

/** How often exec-pending processes and fork tokens of dead pids are looked for. */
export const REAP_INTERVAL_MS = 200;

export interface EngineServer {
  /** The socket path. */
  readonly path: string;
  /** Stop listening, drop every connection and shut the engine down (every process exits). */
  close(): Promise<void>;
}

export interface ServeOptions {
  /**
   * The peer of a connected Unix socket fd, asked as the connection is
   * accepted: its handle (ProcHandle.ofPeer) or its pid (SO_PEERCRED);
   * HELLOs are then checked against it. A throw drops the connection.
   */
  peer?(fd: number): number | ProcHandle;
}

/**
 * Requests a connection may send while one of its calls waits (a restarted
 * call): the library sends one at a time; a client that sends more than
 * this meanwhile breaks the protocol and is dropped.
 */
const MAX_WAITING_FRAMES = 16;

/** Listen on `path` (which must not exist) and serve `engine` there. */
export async function serveEngine(
  engine: Engine,
  path: string,
  opts: ServeOptions = {},
): Promise<EngineServer> {
  const conns = new Map<number, Connection>();
  // connections with a call waiting (Engine.serve's promise): the requests they sent meanwhile
  const waiting = new Map<number, Request[]>();
  /** Answer `req` of connection `fd`, now or when its restarted call is done; then what it sent meanwhile. */
  const answer = (t: Transport, fd: number, conn: Connection, req: Request) => {
    const res = engine.serve(conn, req);
    if (!(res instanceof Promise)) {
      t.reply(fd, encodeResponseInto(res, t.out, t.outView));
      return;
    }
    waiting.set(fd, []);
    void res.then((done) => {
      const queued = waiting.get(fd) ?? [];
      waiting.delete(fd);
      if (conns.get(fd) !== conn) return;
      t.reply(fd, encodeResponseInto(done, t.out, t.outView));
      while (queued.length > 0 && !waiting.has(fd)) answer(t, fd, conn, queued.shift()!);
      if (queued.length > 0) waiting.get(fd)!.unshift(...queued);
    });
  };
  // every frame is read into this one request: it is answered (or copied to wait) before the next
  let reader: RequestReader | undefined;
  const req = emptyRequest();
  const serve = (t: Transport) => {
    reader ??= new RequestReader(t.inView, t.in.subarray(REQUEST_HEADER_SIZE));
    for (;;) {
      const ev = t.next();
      if (ev === EV.YIELD) return;
      const fd = t.fd;
      if (ev === EV.REQUEST) {
        const conn = conns.get(fd);
        if (!conn) continue;
        // the payload is a view of the frame: served now, or copied to wait
        reader.read(req);
        req.oversize = t.oversize;
        const queue = waiting.get(fd);
        if (!queue) answer(t, fd, conn, req);
        else if (queue.length < MAX_WAITING_FRAMES) queue.push(copyRequest(req));
        else {
          t.drop(fd);
          conns.delete(fd);
          waiting.delete(fd);
          engine.disconnect(conn);
        }
      } else if (ev === EV.CONNECT) {
        try {
          conns.set(fd, engine.connect(opts.peer?.(fd)));
        } catch {
          // the peer cannot be told (e.g. the addon is not built): nobody is served blind
          t.drop(fd);
        }
      } else if (ev === EV.CLOSE) {
        const conn = conns.get(fd);
        conns.delete(fd);
        waiting.delete(fd);
        if (conn) engine.disconnect(conn);
      }
    }
  };
  const transport: Transport = openTransport(path, () => serve(transport));
  const reaper = setInterval(() => engine.reap(), REAP_INTERVAL_MS);
  reaper.unref();
  return {
    path,
    async close() {
      clearInterval(reaper);
      transport.close();
      rmSync(path, { force: true });
      for (const conn of conns.values()) engine.disconnect(conn);
      conns.clear();
      engine.shutdown();
    },
  };
}

/**
 * The engine's server: the Unix socket transport (transport.ts) feeding the
 * one Engine. Each request frame is answered completely before the next is
 * looked at, so requests from all connections are handled one at a time;
 * connections take turns frame by frame. A payload over MAX_PAYLOAD is
 * answered with the kernel's errno for an oversized argument (see
 * `Engine.handle`). A reaper runs `engine.reap()` every 200 ms.
 *
 * @example
 * const server = await serveEngine(engine, join(dir, 'engine.sock'));
 * // ... the program runs with UIOMMU_SOCK pointing there ...
 * await server.close();
 */
import { rmSync } from 'node:fs';
import type { Connection, Engine } from './engine.ts';
import { decodeRequest, encodeResponseInto } from './protocol.ts';
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
  /** The peer's pid of a connected Unix socket fd (SO_PEERCRED); HELLOs are then checked against it. */
  peerPid?(fd: number): number;
}

/** Listen on `path` (which must not exist) and serve `engine` there. */
export async function serveEngine(
  engine: Engine,
  path: string,
  opts: ServeOptions = {},
): Promise<EngineServer> {
  const conns = new Map<number, Connection>();
  const serve = (t: Transport) => {
    for (;;) {
      const ev = t.next();
      if (ev === EV.YIELD) return;
      const fd = t.fd;
      if (ev === EV.REQUEST) {
        const conn = conns.get(fd);
        if (!conn) continue;
        const req = decodeRequest(t.in);
        if (t.oversize) req.oversize = true;
        t.reply(fd, encodeResponseInto(engine.handle(conn, req), t.out));
      } else if (ev === EV.CONNECT) {
        try {
          conns.set(fd, engine.connect(opts.peerPid?.(fd)));
        } catch {
          // the peer cannot be told (e.g. the addon is not built): nobody is served blind
          t.drop(fd);
        }
      } else if (ev === EV.CLOSE) {
        const conn = conns.get(fd);
        conns.delete(fd);
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

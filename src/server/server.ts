/**
 * The engine's transport: a Unix stream socket server. Each connection's
 * bytes are cut into request frames (they may arrive split or coalesced
 * in any way); each frame is answered completely by the one Engine before
 * the next is looked at, so requests from all connections are handled one
 * at a time in arrival order — except a call the engine restarts (its
 * answer is a promise: work off the engine's thread): that connection is
 * paused until it is answered, and the others are served meanwhile. A connection sending a malformed frame
 * header (a payload over MAX_PAYLOAD) is dropped, which the engine sees as
 * a close. A reaper runs `engine.reap()` every 200 ms.
 *
 * @example
 * const server = await serveEngine(engine, join(dir, 'engine.sock'));
 * // ... the program runs with UIOMMU_SOCK pointing there ...
 * await server.close();
 */
import { createServer, type Socket } from 'node:net';
import type { ProcHandle } from '../host/proc-handle.ts';
import type { Connection, Engine } from './engine.ts';
import { decodeRequest, encodeResponse, FrameReader } from './protocol.ts';

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

/** Listen on `path` (which must not exist) and serve `engine` there. */
/** How long the event loop keeps polling after an answer before it may sleep. */
const AWAKE_MS = 0.2;

/**
 * A `stayAwake()` that keeps Node's event loop turning (polling sockets
 * without sleeping) for AWAKE_MS after each call: a client's next request
 * then finds the engine awake, which saves a thread wake-up, the largest
 * cost of a round trip on small machines.
 */
function awakeKeeper(): () => void {
  let until = 0;
  let spinning = false;
  const spin = () => {
    if (performance.now() < until) setImmediate(spin);
    else spinning = false;
  };
  return () => {
    until = performance.now() + AWAKE_MS;
    if (spinning) return;
    spinning = true;
    setImmediate(spin);
  };
}

export async function serveEngine(
  engine: Engine,
  path: string,
  opts: ServeOptions = {},
): Promise<EngineServer> {
  const sockets = new Set<Socket>();
  const stayAwake = awakeKeeper();
  const server = createServer((socket) => {
    let conn: Connection;
    try {
      conn = engine.connect(peerOf(socket, opts));
    } catch {
      // the peer cannot be told (e.g. the addon is not built): nobody is served blind
      socket.destroy();
      return;
    }
    sockets.add(socket);
    const reader = new FrameReader('request');
    // frames not yet answered; while one waits (a restarted call) the socket is paused
    const backlog: Uint8Array[] = [];
    let waiting = false;
    const pump = () => {
      while (backlog.length > 0 && !waiting && !socket.destroyed) {
        const answer = engine.serve(conn, decodeRequest(backlog.shift()!));
        if (!(answer instanceof Promise)) {
          socket.write(encodeResponse(answer));
          continue;
        }
        waiting = true;
        socket.pause();
        void answer.then((res) => {
          waiting = false;
          if (socket.destroyed) return;
          socket.write(encodeResponse(res));
          socket.resume();
          pump();
          stayAwake();
        });
      }
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        backlog.push(...reader.push(chunk));
      } catch {
        socket.destroy();
        return;
      }
      pump();
      stayAwake();
    });
    socket.on('error', () => {
      // a reset peer: 'close' follows and counts as the process's exit
    });
    socket.on('close', () => {
      sockets.delete(socket);
      engine.disconnect(conn);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const reaper = setInterval(() => engine.reap(), REAP_INTERVAL_MS);
  reaper.unref();
  return {
    path,
    close() {
      clearInterval(reaper);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      return closed.then(() => engine.shutdown());
    },
  };
}

/** The socket's peer, or undefined without `peer` or a reachable fd (node's handle keeps it). */
function peerOf(socket: Socket, opts: ServeOptions): number | ProcHandle | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (!opts.peer || fd === undefined || fd < 0) return undefined;
  return opts.peer(fd);
}

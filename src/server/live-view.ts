/**
 * The live view of `uiommu run --ui`: an HTTP server on 127.0.0.1 (a port
 * the system picks) serving a page (live-view/index.html, view.js) that
 * draws the emulated kernel's state, kept current through server-sent
 * events. Every request must carry the random token (`?token=`) printed at
 * start, else 403; only GET is served (405), so nothing can change the
 * emulated state. The state is sampled every `intervalMs` while at least
 * one page listens, never pushed per call; a page that reads slowly is
 * skipped until its socket drains, so a slow or absent browser costs the
 * engine nothing but the sampling.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface LiveViewOptions {
  /** The state to show, as JSON-able data; called once per sample. */
  state(): unknown;
  /** The directory holding index.html and view.js. */
  readonly assets: string;
  /** Sampling period while a page listens (default 250 ms). */
  readonly intervalMs?: number;
}

export interface LiveView {
  /** `http://127.0.0.1:PORT/?token=TOKEN`. */
  readonly url: string;
  readonly token: string;
  close(): Promise<void>;
}

const PAGES: Record<string, [file: string, type: string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/view.js': ['view.js', 'text/javascript; charset=utf-8'],
};

interface Listener {
  readonly res: ServerResponse;
  /** The socket's buffer is full: skip samples until it drains. */
  busy: boolean;
}

/** Start serving; resolves once the port is bound. */
export async function serveLiveView(opts: LiveViewOptions): Promise<LiveView> {
  const token = randomBytes(16).toString('hex');
  const expected = Buffer.from(token);
  const listeners = new Set<Listener>();
  let last = '';
  let timer: NodeJS.Timeout | undefined;

  const send = (l: Listener, text: string) => {
    if (l.busy) return;
    if (!l.res.write(`data: ${text}\n\n`)) {
      l.busy = true;
      l.res.once('drain', () => {
        l.busy = false;
      });
    }
  };
  const sample = () => {
    const text = JSON.stringify(opts.state());
    if (text === last) return;
    last = text;
    for (const l of listeners) send(l, text);
  };

  // loaded here, not at start-up: node:http costs every `uiommu run` ~30 ms
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const given = Buffer.from(url.searchParams.get('token') ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('token required\n');
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain' }).end('read-only\n');
      return;
    }
    const page = PAGES[url.pathname];
    if (page) {
      res.writeHead(200, { 'content-type': page[1], 'cache-control': 'no-store' });
      res.end(readFileSync(join(opts.assets, page[0])));
      return;
    }
    if (url.pathname === '/state') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(opts.state()));
      return;
    }
    if (url.pathname === '/events') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      const l: Listener = { res, busy: false };
      listeners.add(l);
      send(l, JSON.stringify(opts.state()));
      timer ??= setInterval(sample, opts.intervalMs ?? 250).unref();
      req.on('close', () => {
        listeners.delete(l);
        if (listeners.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
          last = '';
        }
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    token,
    close() {
      if (timer) clearInterval(timer);
      for (const l of listeners) l.res.end();
      listeners.clear();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

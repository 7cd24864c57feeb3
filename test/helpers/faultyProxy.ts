// A small HTTP proxy in front of a real registry that injects the faults a network and a registry produce:
// 5xx answers, connections cut in the middle of an upload, and blobs whose bytes were altered on the way.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Fault {
  /** Which requests: method and a pattern of the path. */
  method?: string;
  path: RegExp;
  /** How many matching requests get the fault (then they pass). */
  times: number;
  kind: { status: number } | { cutUploadAfterBytes: number } | { corruptBody: true };
}

export class FaultyProxy {
  private server?: http.Server;
  port = 0;
  readonly faults: Fault[] = [];
  /** What the proxy did, for assertions: "500 POST /v2/…", "cut PATCH /v2/…", "corrupt GET …". */
  readonly events: string[] = [];
  /** Every request that passed through: "POST /v2/…". */
  readonly requests: string[] = [];

  constructor(private readonly upstream: string) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  add(fault: Fault): void {
    this.faults.push(fault);
  }

  private take(req: http.IncomingMessage): Fault | undefined {
    const fault = this.faults.find((f) => f.times > 0 && (!f.method || f.method === req.method) && f.path.test(req.url ?? ''));
    if (fault) fault.times--;
    return fault;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const fault = this.take(req);
    const label = `${req.method} ${req.url}`;
    this.requests.push(label);
    if (fault && 'status' in fault.kind) {
      this.events.push(`${fault.kind.status} ${label}`);
      req.resume();
      res.writeHead(fault.kind.status, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'injected fault' }] }));
      return;
    }
    const [host, port] = this.upstream.split(':');
    const upstream = http.request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (up) => {
      if (fault && 'corruptBody' in fault.kind && up.statusCode === 200) {
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          const body = Buffer.concat(chunks);
          if (body.length > 0) body[body.length >> 1] = body[body.length >> 1]! ^ 0xff;
          this.events.push(`corrupt ${label}`);
          res.writeHead(200, up.headers).end(body);
        });
        return;
      }
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    if (fault && 'cutUploadAfterBytes' in fault.kind) {
      // Forward part of the body, then drop both connections as a failing network would.
      const limit = fault.kind.cutUploadAfterBytes;
      let seen = 0;
      req.on('data', (c: Buffer) => {
        if (seen >= limit) return;
        const part = c.subarray(0, Math.max(0, limit - seen));
        seen += c.length;
        if (part.length) upstream.write(part);
        if (seen >= limit) {
          this.events.push(`cut ${label}`);
          upstream.destroy();
          req.socket.destroy();
        }
      });
      return;
    }
    req.pipe(upstream);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

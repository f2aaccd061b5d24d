// SPDX-License-Identifier: Apache-2.0
// airlockd's HTTP API over its Unix socket, with Node's http module only.
// One connection per request: a Unix-socket connect costs microseconds, and
// no kept-alive socket can go stale under airlockd's 60 s idle timeout.

import http from 'node:http';

export const DEFAULT_SOCKET = '/run/airlock/airlockd.sock';

/** An answer of airlockd's that is an error (`{"error": {code, message}}`). */
export class AirlockApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly method: string;
  readonly path: string;
  constructor(status: number, code: string, message: string, method: string, path: string) {
    super(`airlockd ${method} ${path}: HTTP ${status} ${code}: ${message}`);
    this.name = 'AirlockApiError';
    this.status = status;
    this.code = code;
    this.method = method;
    this.path = path;
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export type ExecRequest = {
  argv?: string[];
  command?: string;
  cwd?: string;
  env?: Record<string, string>;
  stdin?: string;
  stdin_base64?: string;
  keep_stdin_open?: boolean;
  timeout_ms?: number;
  yield_ms?: number;
  max_output_bytes?: number;
  encoding?: 'utf8' | 'base64';
  /** On a pseudo-terminal of the sandbox, of rows x cols. */
  tty?: boolean;
  rows?: number;
  cols?: number;
};

export type ExecResult = {
  running: boolean;
  process_id?: string;
  exit_code: number | null;
  signal: number | null;
  timed_out: boolean;
  duration_ms?: number;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
};

export type SandboxSummary = {
  id: string;
  name: string;
  state: 'running' | 'stopped' | 'removed';
  created: string;
  rootfs: string;
};

export type DirEntry = {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mode: string;
};

export type SnapshotSummary = {
  id: string;
  parent: string | null;
  created: string;
  provider: string;
  processes: boolean;
  sizes: Record<string, number>;
  sandbox: Record<string, unknown>;
};

export type CreateRequest = {
  name?: string;
  rootfs?: string;
  manifest?: Record<string, unknown>;
  limits?: Record<string, number | string>;
  /** "none" (loopback only), or an allowlist (docs/network.md). */
  network?: 'loopback' | 'none' | { allow: string[] };
  /** Published ports, "[HOSTADDR:]HOSTPORT:PORT[/udp]" (HOSTPORT 0: any free one). */
  ports?: string[];
  seccomp_profile?: string;
  env?: Record<string, string>;
  snapshot?: string;
};

type Answer = { status: number; contentType: string; body: Buffer };

/** Typed calls of airlockd's v1 API (docs/api.md, docs/openapi.yaml). */
export class AirlockApi {
  readonly socketPath: string;
  readonly timeoutMs: number;

  constructor(options: { socketPath?: string; timeoutMs?: number } = {}) {
    this.socketPath = options.socketPath ?? process.env.AIRLOCK_SOCKET ?? DEFAULT_SOCKET;
    this.timeoutMs = options.timeoutMs ?? 0;
  }

  /** One request; answers whatever came back (no exception for 4xx/5xx). */
  request(
    method: string,
    path: string,
    options: { query?: Query; json?: unknown; body?: Uint8Array; contentType?: string } = {},
  ): Promise<Answer> {
    let url = path;
    const q = Object.entries(options.query ?? {}).filter(([, v]) => v !== undefined);
    if (q.length > 0) {
      url += '?' + new URLSearchParams(q.map(([k, v]) => [k, String(v)])).toString();
    }
    let payload: Buffer | undefined;
    const headers: Record<string, string> = {};
    if (options.json !== undefined) {
      payload = Buffer.from(JSON.stringify(options.json));
      headers['Content-Type'] = 'application/json';
    } else if (options.body !== undefined) {
      payload = Buffer.from(options.body.buffer, options.body.byteOffset, options.body.byteLength);
      headers['Content-Type'] = options.contentType ?? 'application/octet-stream';
    }
    if (payload) {
      headers['Content-Length'] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
      const req = http.request(
        { socketPath: this.socketPath, path: url, method, headers, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              contentType: String(res.headers['content-type'] ?? '').split(';')[0]!,
              body: Buffer.concat(chunks),
            }),
          );
        },
      );
      if (this.timeoutMs > 0) {
        req.setTimeout(this.timeoutMs, () =>
          req.destroy(new Error(`airlockd ${method} ${path}: no answer within ${this.timeoutMs} ms`)),
        );
      }
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'EACCES') {
          reject(new Error(`cannot connect to airlockd at ${this.socketPath}: ${e.message}`));
        } else {
          reject(e);
        }
      });
      req.end(payload);
    });
  }

  /** A request whose status must be one of `ok`, else an AirlockApiError. */
  async call(
    method: string,
    path: string,
    options: { query?: Query; json?: unknown; body?: Uint8Array; contentType?: string; ok?: number[] } = {},
  ): Promise<Answer> {
    const answer = await this.request(method, path, options);
    if (!(options.ok ?? [200]).includes(answer.status)) {
      let code = `http_${answer.status}`;
      let message = answer.body.toString('utf8', 0, Math.min(answer.body.length, 500));
      try {
        const err = JSON.parse(answer.body.toString('utf8')).error;
        if (typeof err?.code === 'string' && typeof err?.message === 'string') {
          code = err.code;
          message = err.message;
        }
      } catch {
        // not JSON: the raw text is the message
      }
      throw new AirlockApiError(answer.status, code, message, method, path);
    }
    return answer;
  }

  private async json<T>(method: string, path: string, options: Parameters<AirlockApi['call']>[2] = {}): Promise<T> {
    const answer = await this.call(method, path, options);
    try {
      return JSON.parse(answer.body.toString('utf8')) as T;
    } catch {
      throw new AirlockApiError(answer.status, 'bad_answer', 'answer is not JSON', method, path);
    }
  }

  info(): Promise<Record<string, unknown>> {
    return this.json('GET', '/v1/info');
  }

  create(body: CreateRequest, summary = true): Promise<SandboxSummary> {
    return this.json('POST', '/v1/sandboxes', {
      json: body,
      query: { view: summary ? 'summary' : undefined },
      ok: [201],
    });
  }

  inspect(id: string): Promise<SandboxSummary & Record<string, unknown>> {
    return this.json('GET', `/v1/sandboxes/${seg(id)}`);
  }

  async delete(id: string, wait = true): Promise<void> {
    await this.json('DELETE', `/v1/sandboxes/${seg(id)}`, { query: { wait: wait ? undefined : 0 } });
  }

  exec(id: string, body: ExecRequest): Promise<ExecResult> {
    return this.json('POST', `/v1/sandboxes/${seg(id)}/exec`, { json: body });
  }

  poll(id: string, pid: string, yieldMs = 0): Promise<ExecResult> {
    return this.json('GET', `/v1/sandboxes/${seg(id)}/processes/${seg(pid)}`, { query: { yield_ms: yieldMs } });
  }

  writeStdin(id: string, pid: string, body: { data?: string; data_base64?: string; close?: boolean; yield_ms?: number }): Promise<ExecResult> {
    return this.json('POST', `/v1/sandboxes/${seg(id)}/processes/${seg(pid)}/stdin`, { json: body });
  }

  async kill(id: string, pid: string, signal: 'KILL' | 'TERM' | 'INT' | 'HUP' = 'KILL'): Promise<void> {
    await this.json('DELETE', `/v1/sandboxes/${seg(id)}/processes/${seg(pid)}`, { query: { signal } });
  }

  async readFile(id: string, path: string): Promise<Uint8Array> {
    return new Uint8Array((await this.call('GET', `/v1/sandboxes/${seg(id)}/files`, { query: { path } })).body);
  }

  async writeFile(id: string, path: string, data: Uint8Array, options: { mode?: number; parents?: boolean } = {}): Promise<void> {
    await this.json('PUT', `/v1/sandboxes/${seg(id)}/files`, {
      query: {
        path,
        mode: options.mode === undefined ? undefined : (options.mode & 0o7777).toString(8).padStart(4, '0'),
        parents: options.parents ? 1 : undefined,
      },
      body: data,
    });
  }

  async deleteFile(id: string, path: string, recursive = false): Promise<void> {
    await this.json('DELETE', `/v1/sandboxes/${seg(id)}/files`, { query: { path, recursive: recursive ? 1 : undefined } });
  }

  listDir(id: string, path: string): Promise<{ path: string; entries: DirEntry[] }> {
    return this.json('GET', `/v1/sandboxes/${seg(id)}/dirs`, { query: { path } });
  }

  async makeDir(id: string, path: string, parents = true): Promise<void> {
    await this.json('POST', `/v1/sandboxes/${seg(id)}/dirs`, { query: { path, parents: parents ? 1 : undefined }, ok: [201] });
  }

  async persistWorkspace(id: string): Promise<Uint8Array> {
    return new Uint8Array((await this.call('GET', `/v1/sandboxes/${seg(id)}/workspace`)).body);
  }

  async hydrateWorkspace(
    id: string,
    archive: Uint8Array,
    limits: { maxInputBytes?: number | null; maxExtractedBytes?: number | null; maxMembers?: number | null } = {},
  ): Promise<void> {
    await this.json('PUT', `/v1/sandboxes/${seg(id)}/workspace`, {
      body: archive,
      contentType: 'application/x-tar',
      query: {
        max_input_bytes: limits.maxInputBytes ?? undefined,
        max_extracted_bytes: limits.maxExtractedBytes ?? undefined,
        max_members: limits.maxMembers ?? undefined,
      },
    });
  }

  snapshot(id: string, processes: boolean): Promise<SnapshotSummary> {
    return this.json('POST', `/v1/sandboxes/${seg(id)}/snapshots`, { json: { processes }, ok: [201] });
  }

  async snapshots(): Promise<SnapshotSummary[]> {
    return (await this.json<{ snapshots: SnapshotSummary[] }>('GET', '/v1/snapshots')).snapshots;
  }

  async deleteSnapshot(id: string): Promise<void> {
    await this.json('DELETE', `/v1/snapshots/${seg(id)}`);
  }
}

/** One path segment (an id): refused when it could leave its place in the URL. */
function seg(id: string): string {
  if (typeof id !== 'string' || id === '' || id.includes('/') || id === '.' || id === '..') {
    throw new TypeError(`not a valid airlockd id: ${JSON.stringify(id)}`);
  }
  return encodeURIComponent(id);
}

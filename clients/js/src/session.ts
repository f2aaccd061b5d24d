// SPDX-License-Identifier: Apache-2.0
// One Airlock sandbox as the OpenAI Agents SDK's SandboxSession.  Every call
// is a request to airlockd: commands run through its exec API (no shell
// helper scripts), files through its confined file API, workspaces through
// its archive API, which refuses hostile tars itself before writing a byte.

import fs from 'node:fs/promises';
import path from 'node:path';
import { applyDiff } from '@openai/agents-core';
import type { ApplyPatchOperation, ApplyPatchResult, Editor } from '@openai/agents-core';
import {
  Manifest,
  SandboxApplyPatchFileNotFoundError,
  SandboxArchiveError,
  SandboxConfigurationError,
  SandboxProviderError,
  SandboxRuntimeError,
  SandboxUnsupportedFeatureError,
  SandboxWorkspaceReadNotFoundError,
  validateSandboxArchiveLimits,
  type Entry,
  type ExecCommandArgs,
  type ExposedPortEndpoint,
  type ListDirectoryArgs,
  type MaterializeEntryArgs,
  type ReadFileArgs,
  type SandboxArchiveLimits,
  type SandboxDirectoryEntry,
  type SandboxExecResult,
  type SandboxSession,
  type SandboxSessionState,
  type ViewImageArgs,
  type WorkspaceArchiveData,
  type WorkspaceArchiveOptions,
  type WriteStdinArgs,
} from '@openai/agents-core/sandbox';
import {
  elapsedSeconds,
  formatExecResponse,
  imageOutputFromBytes,
  truncateOutput,
} from '@openai/agents-core/sandbox/internal';
import { AirlockApi, AirlockApiError, type ExecResult } from './api.js';
import { entryForAirlockd } from './manifest.js';

/** The first line of what persistWorkspace() answers for a native snapshot. */
export const AIRLOCK_SNAPSHOT_MAGIC = 'AIRLOCK_SANDBOX_SNAPSHOT_V1';

export type AirlockWorkspacePersistence = 'tar' | 'snapshot';

export interface AirlockSandboxSessionState extends SandboxSessionState {
  /** airlockd's id of the sandbox. */
  sandboxId: string;
  /** Materialized environment (airlockd holds it as the sandbox's default). */
  environment: Record<string, string>;
  /** "snapshot": persistWorkspace() takes an Airlock snapshot and answers a reference to it. */
  workspacePersistence?: AirlockWorkspacePersistence;
  /** With snapshots: include the running processes (CRIU). */
  snapshotProcesses?: boolean;
  /** How the sandbox was made, to make it again when resume finds it gone. */
  rootfs?: string;
  limits?: Record<string, number | string>;
  seccompProfile?: string;
  commandTimeoutMs?: number;
}

const PROVIDER = 'AirlockSandboxClient';
const DEFAULT_TTY_YIELD_MS = 10_000;
const DEFAULT_STDIN_YIELD_MS = 250;

type TtySession = { processId: string };

/** The terminal of a tty exec, as the hosted providers' PTY sessions. */
const TTY_ROWS = 24;
const TTY_COLS = 80;

export class AirlockSandboxSession implements SandboxSession<AirlockSandboxSessionState> {
  readonly state: AirlockSandboxSessionState;
  readonly api: AirlockApi;
  private archiveLimits?: SandboxArchiveLimits | null;
  private readonly sessions = new Map<number, TtySession>();
  private deleted = false;

  constructor(args: {
    api: AirlockApi;
    state: AirlockSandboxSessionState;
    archiveLimits?: SandboxArchiveLimits | null;
  }) {
    this.api = args.api;
    this.state = args.state;
    this.archiveLimits = args.archiveLimits;
  }

  get sandboxId(): string {
    return this.state.sandboxId;
  }

  private usable(): void {
    if (this.deleted) {
      throw new SandboxRuntimeError(`${PROVIDER}: sandbox ${this.state.sandboxId} was deleted`, {
        provider: PROVIDER,
        sandboxId: this.state.sandboxId,
      });
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  async running(): Promise<boolean> {
    if (this.deleted) return false;
    try {
      return (await this.api.inspect(this.state.sandboxId)).state === 'running';
    } catch (e) {
      if (e instanceof AirlockApiError && e.status === 404) return false;
      throw e;
    }
  }

  async start(): Promise<void> {
    // airlockd answers a create once the sandbox runs with its manifest
    // materialized; a sandbox that is not running (its PID 1 died) cannot
    // be started again.
    if (!(await this.running())) {
      throw new SandboxRuntimeError(`${PROVIDER}: sandbox ${this.state.sandboxId} is not running`, {
        provider: PROVIDER,
        sandboxId: this.state.sandboxId,
      });
    }
  }

  /** Destroy the sandbox (no process, mount or cgroup of it is left). */
  async delete(): Promise<void> {
    if (this.deleted) return;
    try {
      await this.api.delete(this.state.sandboxId);
    } catch (e) {
      if (!(e instanceof AirlockApiError && e.status === 404)) throw e;
    }
    this.deleted = true;
    this.sessions.clear();
  }

  async close(): Promise<void> {
    await this.delete();
  }

  supportsPty(): boolean {
    return true;
  }

  setArchiveLimits(limits?: SandboxArchiveLimits | null): void {
    validateSandboxArchiveLimits(limits);
    this.archiveLimits = limits;
  }

  /** Where a port given in the client's `exposedPorts` is reached: airlockd
   * relays it from a free port of the host's loopback (docs/network.md). */
  async resolveExposedPort(port: number): Promise<ExposedPortEndpoint> {
    this.usable();
    const info = await this.api.inspect(this.state.sandboxId);
    const ports = (info.ports ?? []) as {
      port: number;
      protocol?: string;
      host_address: string;
      host_port: number;
      url: string;
    }[];
    // An exposed port is a TCP one: a UDP port of the same number is not it.
    const p = ports.find((e) => e.port === port && e.protocol !== 'udp');
    if (!p) {
      throw new SandboxUnsupportedFeatureError(
        `${PROVIDER}: port ${port} is not exposed (give it in the client's exposedPorts option at create)`,
        { provider: PROVIDER, feature: 'exposedPorts', port },
      );
    }
    return { host: p.host_address, port: p.host_port, tls: false, url: p.url };
  }

  // ---- commands ----------------------------------------------------------------------------

  private shellArgv(args: ExecCommandArgs): string[] {
    if (typeof args.cmd !== 'string' || args.cmd === '') {
      throw new SandboxConfigurationError(`${PROVIDER}: exec needs a non-empty cmd`, { provider: PROVIDER });
    }
    if (args.runAs !== undefined && args.runAs !== 'root') {
      throw new SandboxUnsupportedFeatureError(`${PROVIDER}: airlockd runs commands as the sandbox's root only`, {
        provider: PROVIDER,
        feature: 'runAs',
        runAs: args.runAs,
      });
    }
    return [args.shell ?? '/bin/sh', (args.login ?? true) ? '-lc' : '-c', args.cmd];
  }

  private cwd(workdir?: string): string {
    if (!workdir) return this.state.manifest.root;
    return path.posix.isAbsolute(workdir) ? workdir : path.posix.join(this.state.manifest.root, workdir);
  }

  private result(r: ExecResult, start: number, maxOutputTokens?: number, sessionId?: number): SandboxExecResult {
    const output = truncateOutput(r.stdout + r.stderr, maxOutputTokens);
    return {
      output: output.text,
      stdout: r.stdout,
      stderr: r.stderr,
      wallTimeSeconds: elapsedSeconds(start),
      ...(r.running ? { sessionId } : { exitCode: r.exit_code }),
      ...(output.originalTokenCount !== undefined ? { originalTokenCount: output.originalTokenCount } : {}),
    };
  }

  /**
   * Run `cmd` with the shell.  Without `tty` the answer comes when the
   * command ends (as the hosted providers' non-PTY exec).  With `tty` it
   * runs on a pseudo-terminal of the sandbox (airlockd's `tty`), answered
   * after `yieldTimeMs` with a `sessionId` for writeStdin() while it runs;
   * its output is the terminal's (stderr included, `\r\n` line ends).
   */
  async exec(args: ExecCommandArgs): Promise<SandboxExecResult> {
    this.usable();
    const start = Date.now();
    const argv = this.shellArgv(args);
    const r = await this.api.exec(this.state.sandboxId, {
      argv,
      cwd: this.cwd(args.workdir),
      ...(args.tty
        ? {
            tty: true,
            rows: TTY_ROWS,
            cols: TTY_COLS,
            keep_stdin_open: true,
            yield_ms: Math.max(1, args.yieldTimeMs ?? DEFAULT_TTY_YIELD_MS),
          }
        : {}),
      ...(this.state.commandTimeoutMs ? { timeout_ms: this.state.commandTimeoutMs } : {}),
    });
    let sessionId: number | undefined;
    if (r.running) {
      sessionId = Number((r.process_id ?? '').replace(/^p/, ''));
      if (!Number.isSafeInteger(sessionId)) {
        throw new SandboxProviderError(`${PROVIDER}: airlockd answered process id ${r.process_id}`, {
          provider: PROVIDER,
        });
      }
      this.sessions.set(sessionId, { processId: r.process_id! });
    }
    return this.result(r, start, args.maxOutputTokens, sessionId);
  }

  async execCommand(args: ExecCommandArgs): Promise<string> {
    return formatExecResponse(await this.exec(args));
  }

  /** Type into a running tty session (`\u0003` is Ctrl-C), then collect output for yieldTimeMs. */
  async writeStdin(args: WriteStdinArgs): Promise<string> {
    this.usable();
    const start = Date.now();
    const s = this.sessions.get(args.sessionId);
    if (!s) {
      return formatExecResponse({
        output: `write_stdin failed: session not found: ${args.sessionId}`,
        wallTimeSeconds: 0,
        exitCode: 1,
      });
    }
    // Typed into the terminal: its line discipline turns `\u0003` into
    // SIGINT for the foreground job, as on the hosted providers' PTYs.
    const chars = args.chars ?? '';
    let r: ExecResult;
    try {
      r = await this.api.writeStdin(this.state.sandboxId, s.processId, {
        ...(chars ? { data: chars } : {}),
        yield_ms: args.yieldTimeMs ?? DEFAULT_STDIN_YIELD_MS,
      });
    } catch (e) {
      // The process ended and closed its stdin: collect what it left.
      if (!(e instanceof AirlockApiError && e.status === 503)) throw e;
      r = await this.api.poll(this.state.sandboxId, s.processId, args.yieldTimeMs ?? DEFAULT_STDIN_YIELD_MS);
    }
    if (!r.running) this.sessions.delete(args.sessionId);
    const res = this.result(r, start, args.maxOutputTokens, args.sessionId);
    return formatExecResponse(res);
  }

  // ---- files -------------------------------------------------------------------------------

  async readFile(args: ReadFileArgs): Promise<Uint8Array> {
    this.usable();
    this.noRunAs(args.runAs);
    try {
      const data = await this.api.readFile(this.state.sandboxId, args.path);
      if (args.maxBytes !== undefined && data.byteLength > args.maxBytes) {
        throw new SandboxRuntimeError(`${PROVIDER}: ${args.path} is larger than ${args.maxBytes} bytes`, {
          provider: PROVIDER,
          path: args.path,
          size: data.byteLength,
        });
      }
      return data;
    } catch (e) {
      throw this.fileError(e, args.path);
    }
  }

  async listDir(args: ListDirectoryArgs): Promise<SandboxDirectoryEntry[]> {
    this.usable();
    this.noRunAs(args.runAs);
    try {
      const listing = await this.api.listDir(this.state.sandboxId, args.path);
      return listing.entries.map((e) => ({
        name: e.name,
        path: path.posix.join(listing.path, e.name),
        type: e.type === 'file' || e.type === 'dir' ? e.type : 'other',
      }));
    } catch (e) {
      throw this.fileError(e, args.path);
    }
  }

  async pathExists(p: string, runAs?: string): Promise<boolean> {
    return this.test('-e', p, runAs);
  }

  async directoryExists(p: string, runAs?: string): Promise<boolean> {
    return this.test('-d', p, runAs);
  }

  private async test(flag: string, p: string, runAs?: string): Promise<boolean> {
    this.usable();
    this.noRunAs(runAs);
    const r = await this.api.exec(this.state.sandboxId, { argv: ['test', flag, p], cwd: this.state.manifest.root });
    return r.exit_code === 0;
  }

  async viewImage(args: ViewImageArgs) {
    const bytes = await this.readFile({ path: args.path, runAs: args.runAs });
    return imageOutputFromBytes(args.path, bytes);
  }

  private noRunAs(runAs?: string): void {
    if (runAs !== undefined && runAs !== 'root') {
      throw new SandboxUnsupportedFeatureError(`${PROVIDER}: airlockd's file API acts as the sandbox's root only`, {
        provider: PROVIDER,
        feature: 'runAs',
        runAs,
      });
    }
  }

  private fileError(e: unknown, p: string): unknown {
    if (e instanceof AirlockApiError && e.status === 404) {
      return new SandboxWorkspaceReadNotFoundError(`${PROVIDER}: ${p}: ${e.message}`, { provider: PROVIDER, path: p });
    }
    return e;
  }

  /** Write one manifest entry at `path` (relative: under the workspace root). */
  async materializeEntry(args: MaterializeEntryArgs): Promise<void> {
    this.usable();
    this.noRunAs(args.runAs);
    const target = path.posix.isAbsolute(args.path) ? args.path : path.posix.join(this.state.manifest.root, args.path);
    await this.writeEntry(target, entryForAirlockd(args.path, args.entry) as AirlockEntry, args.entry);
  }

  private async writeEntry(target: string, e: AirlockEntry, original: Entry): Promise<void> {
    const id = this.state.sandboxId;
    const mode = typeof e.permissions === 'number' ? e.permissions : undefined;
    switch (e.type) {
      case 'file': {
        const data =
          typeof e.content === 'string' ? Buffer.from(e.content) : Buffer.from(e.content!.data, 'base64');
        await this.api.writeFile(id, target, data, { mode, parents: true });
        return;
      }
      case 'dir':
        await this.api.makeDir(id, target, true);
        for (const [name, child] of Object.entries(e.children ?? {})) {
          const orig = (original as { children?: Record<string, Entry> }).children?.[name] as Entry;
          await this.writeEntry(path.posix.join(target, name), child, orig);
        }
        return;
      case 'local_file':
        await this.api.writeFile(id, target, await fs.readFile(e.src!), { mode, parents: true });
        return;
      case 'local_dir':
        await this.copyHostDir(e.src!, target);
        return;
    }
  }

  private async copyHostDir(src: string, target: string): Promise<void> {
    await this.api.makeDir(this.state.sandboxId, target, true);
    for (const d of await fs.readdir(src, { withFileTypes: true })) {
      const from = path.join(src, d.name);
      const to = path.posix.join(target, d.name);
      if (d.isDirectory()) {
        await this.copyHostDir(from, to);
      } else if (d.isFile()) {
        const st = await fs.stat(from);
        await this.api.writeFile(this.state.sandboxId, to, await fs.readFile(from), { mode: st.mode & 0o777 });
      }
      // Symlinks and special files stay on the host, as in the SDK's own local_dir copy.
    }
  }

  /** Materialize every entry of `manifest` into the running sandbox. */
  async applyManifest(manifest: Manifest, runAs?: string): Promise<void> {
    for (const [key, entry] of Object.entries(manifest.entries)) {
      await this.materializeEntry({ path: path.posix.join(manifest.root, key), entry: entry as Entry, runAs });
    }
  }

  createEditor(runAs?: string): Editor {
    this.noRunAs(runAs);
    return new AirlockEditor(this);
  }

  // ---- workspace persistence ------------------------------------------------------------------

  /**
   * The workspace as the SDK's portable tar; with `workspacePersistence:
   * "snapshot"` an Airlock snapshot is taken instead and the answer is a
   * reference to it (`AIRLOCK_SANDBOX_SNAPSHOT_V1\n{"snapshot_id": …}`), as
   * the hosted providers answer theirs.  Manifests with ephemeral entries
   * always get the tar (a snapshot would keep them).
   */
  async persistWorkspace(): Promise<Uint8Array> {
    this.usable();
    if (this.state.workspacePersistence === 'snapshot' && this.state.manifest.ephemeralEntryPaths().size === 0) {
      const snap = await this.api.snapshot(this.state.sandboxId, this.state.snapshotProcesses ?? false);
      return new TextEncoder().encode(
        `${AIRLOCK_SNAPSHOT_MAGIC}\n${JSON.stringify({ snapshot_id: snap.id, processes: snap.processes })}`,
      );
    }
    return await this.api.persistWorkspace(this.state.sandboxId);
  }

  /**
   * Replace the workspace with a tar (any provider's), refused whole by
   * airlockd when hostile (traversal, absolute paths, escaping links,
   * devices, over a limit); or, given a snapshot reference, move this
   * session to a sandbox restored from that snapshot.
   */
  async hydrateWorkspace(data: WorkspaceArchiveData, options: WorkspaceArchiveOptions = {}): Promise<void> {
    this.usable();
    const bytes =
      typeof data === 'string'
        ? Buffer.from(data, 'binary')
        : data instanceof Uint8Array
          ? data
          : new Uint8Array(data);
    const ref = snapshotReference(bytes);
    if (ref) {
      await this.restoreSnapshot(ref);
      return;
    }
    const limits = options.archiveLimits !== undefined ? options.archiveLimits : this.archiveLimits;
    validateSandboxArchiveLimits(limits);
    try {
      await this.api.hydrateWorkspace(this.state.sandboxId, bytes, limits ?? {});
    } catch (e) {
      if (e instanceof AirlockApiError && (e.status === 400 || e.status === 413)) {
        throw new SandboxArchiveError(`${PROVIDER}: workspace archive refused: ${e.message}`, {
          provider: PROVIDER,
          status: e.status,
          code: e.code,
        });
      }
      throw e;
    }
  }

  private async restoreSnapshot(snapshotId: string): Promise<void> {
    const previous = this.state.sandboxId;
    let restored;
    try {
      restored = await this.api.create({ snapshot: snapshotId });
    } catch (e) {
      // A snapshot with processes restores into the uid range it was taken
      // in; when this session's own sandbox got that range (its source was
      // destroyed before it was made), this sandbox has to go first.  Its
      // workspace was about to be replaced anyway.
      if (!(e instanceof AirlockApiError && e.status === 409 && e.message.includes(`sandbox ${previous}`))) {
        throw e;
      }
      await this.delete();
      this.deleted = false;
      restored = await this.api.create({ snapshot: snapshotId });
      this.state.sandboxId = restored.id;
      return;
    }
    this.state.sandboxId = restored.id;
    this.sessions.clear();
    // The session owns the sandbox it runs in; the one it left is no longer reachable through it.
    await this.api.delete(previous).catch((e) => {
      if (!(e instanceof AirlockApiError && e.status === 404)) throw e;
    });
  }
}

type AirlockEntry = {
  type: 'file' | 'dir' | 'local_file' | 'local_dir';
  content?: string | { type: 'base64'; data: string };
  children?: Record<string, AirlockEntry>;
  src?: string;
  permissions?: number;
};

/** The snapshot id a persisted-workspace reference names, or undefined for anything else. */
export function snapshotReference(bytes: Uint8Array): string | undefined {
  const head = Buffer.from(bytes.subarray(0, AIRLOCK_SNAPSHOT_MAGIC.length + 1)).toString('latin1');
  if (head !== `${AIRLOCK_SNAPSHOT_MAGIC}\n`) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.subarray(head.length)).toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const id = (parsed as { snapshot_id?: unknown } | undefined)?.snapshot_id;
  if (typeof id !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(id)) {
    throw new SandboxArchiveError(`${PROVIDER}: malformed Airlock snapshot reference`, { provider: PROVIDER });
  }
  return id;
}

/** apply_patch on airlockd's file API: read, apply the V4A diff with the SDK's applyDiff, write. */
class AirlockEditor implements Editor {
  constructor(private readonly session: AirlockSandboxSession) {}

  private target(p: string): string {
    return path.posix.isAbsolute(p) ? p : path.posix.join(this.session.state.manifest.root, p);
  }

  async createFile(op: Extract<ApplyPatchOperation, { type: 'create_file' }>): Promise<ApplyPatchResult> {
    const content = applyDiff('', op.diff, 'create');
    await this.session.api.writeFile(this.session.sandboxId, this.target(op.path), Buffer.from(content), { parents: true });
    return { status: 'completed', output: `Created ${op.path}` };
  }

  async updateFile(op: Extract<ApplyPatchOperation, { type: 'update_file' }>): Promise<ApplyPatchResult> {
    const from = this.target(op.path);
    let before: string;
    try {
      before = Buffer.from(await this.session.api.readFile(this.session.sandboxId, from)).toString('utf8');
    } catch (e) {
      if (e instanceof AirlockApiError && e.status === 404) {
        throw new SandboxApplyPatchFileNotFoundError(`${PROVIDER}: cannot update ${op.path}: no such file`, {
          provider: PROVIDER,
          path: op.path,
        });
      }
      throw e;
    }
    const after = applyDiff(before, op.diff);
    const to = op.moveTo ? this.target(op.moveTo) : from;
    await this.session.api.writeFile(this.session.sandboxId, to, Buffer.from(after), { parents: true });
    if (to !== from) await this.session.api.deleteFile(this.session.sandboxId, from);
    return { status: 'completed', output: op.moveTo ? `Updated ${op.path} -> ${op.moveTo}` : `Updated ${op.path}` };
  }

  async deleteFile(op: Extract<ApplyPatchOperation, { type: 'delete_file' }>): Promise<ApplyPatchResult> {
    await this.session.api.deleteFile(this.session.sandboxId, this.target(op.path));
    return { status: 'completed', output: `Deleted ${op.path}` };
  }
}


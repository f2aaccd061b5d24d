// SPDX-License-Identifier: Apache-2.0
// Airlock as the OpenAI Agents SDK's SandboxClient: `new AirlockSandboxClient()`
// drops into a Runner's sandbox config the way the hosted providers' clients do.

import {
  Manifest,
  SandboxConfigurationError,
  SandboxUnsupportedFeatureError,
  isNoopSnapshotSpec,
  normalizeSandboxClientCreateArgs,
  validateSandboxArchiveLimits,
  type SandboxArchiveLimits,
  type SandboxClient,
  type SandboxClientCreateArgs,
  type SandboxClientOptions,
  type SandboxClientResumeOptions,
} from '@openai/agents-core/sandbox';
import {
  deserializeManifest,
  deserializePersistedEnvironmentForRuntime,
  materializeEnvironment,
  serializeRuntimeEnvironmentForPersistence,
} from '@openai/agents-core/sandbox/internal';
import { AirlockApi, AirlockApiError } from './api.js';
import { manifestForAirlockd } from './manifest.js';
import {
  AirlockSandboxSession,
  type AirlockSandboxSessionState,
  type AirlockWorkspacePersistence,
} from './session.js';

export interface AirlockSandboxClientOptions extends SandboxClientOptions {
  /** airlockd's socket; default `$AIRLOCK_SOCKET`, else /run/airlock/airlockd.sock. */
  socketPath?: string;
  /** Base root filesystem (a directory airlockd knows); default: airlockd's. */
  rootfs?: string;
  /** cgroup limits, as airlockd takes them: {memory: "512M", pids: 256, cpus: 1.5, disk: "2G"}. */
  limits?: Record<string, number | string>;
  /** A seccomp profile name from airlockd's seccomp-profiles/ (default: "default"). */
  seccompProfile?: string;
  /** Environment added to the manifest's. */
  env?: Record<string, string>;
  /** "tar" (default): the portable archive; "snapshot": an Airlock snapshot reference. */
  workspacePersistence?: AirlockWorkspacePersistence;
  /** Snapshots include running processes (CRIU); default false. */
  snapshotProcesses?: boolean;
  /** Kill a command after this long (airlockd's timeout_ms); default none. */
  commandTimeoutMs?: number;
  /** Per-request timeout of the HTTP calls; default none. */
  requestTimeoutMs?: number;
  /** Sandbox ports airlockd publishes on free ports of the host's loopback
   * (resolveExposedPort tells where), as the SDK's Docker client does. */
  exposedPorts?: number[];
  archiveLimits?: SandboxArchiveLimits | null;
}

const PROVIDER = 'AirlockSandboxClient';
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export class AirlockSandboxClient implements SandboxClient<AirlockSandboxClientOptions, AirlockSandboxSessionState> {
  readonly backendId = 'airlock';
  readonly options: AirlockSandboxClientOptions;

  constructor(options: AirlockSandboxClientOptions = {}) {
    validateOptions(options);
    this.options = options;
  }

  private api(options: AirlockSandboxClientOptions): AirlockApi {
    return new AirlockApi({ socketPath: options.socketPath, timeoutMs: options.requestTimeoutMs });
  }

  async create(
    args?: SandboxClientCreateArgs<AirlockSandboxClientOptions> | Manifest,
    manifestOptions?: AirlockSandboxClientOptions,
  ): Promise<AirlockSandboxSession> {
    const createArgs = normalizeSandboxClientCreateArgs(args, manifestOptions);
    if (createArgs.snapshot && !isNoopSnapshotSpec(createArgs.snapshot)) {
      throw new SandboxUnsupportedFeatureError(
        `${PROVIDER}: the SDK's snapshot specs are not used; persist with persistWorkspace() (workspacePersistence "snapshot" for Airlock snapshots)`,
        { provider: PROVIDER, feature: 'snapshot', snapshotType: createArgs.snapshot.type },
      );
    }
    const options = { ...this.options, ...createArgs.options };
    validateOptions(options);
    validateSandboxArchiveLimits(createArgs.archiveLimits);
    const manifest = createArgs.manifest;
    const environment = await materializeEnvironment(manifest, options.env);
    const api = this.api(options);
    const sandbox = await api.create({
      manifest: manifestForAirlockd(manifest),
      env: environment,
      ...(options.rootfs ? { rootfs: options.rootfs } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.seccompProfile ? { seccomp_profile: options.seccompProfile } : {}),
      ...(options.exposedPorts?.length ? { ports: options.exposedPorts.map((p) => `0:${p}`) } : {}),
    });
    return new AirlockSandboxSession({
      api,
      archiveLimits: createArgs.archiveLimits ?? options.archiveLimits,
      state: {
        manifest,
        sandboxId: sandbox.id,
        environment,
        workspacePersistence: options.workspacePersistence,
        snapshotProcesses: options.snapshotProcesses,
        rootfs: options.rootfs,
        limits: options.limits,
        seccompProfile: options.seccompProfile,
        commandTimeoutMs: options.commandTimeoutMs,
      },
    });
  }

  /** Destroy the sandbox a state names (gone already is fine). */
  async delete(state: AirlockSandboxSessionState): Promise<void> {
    try {
      await this.api(this.options).delete(state.sandboxId);
    } catch (e) {
      if (!(e instanceof AirlockApiError && e.status === 404)) throw e;
    }
  }

  // The runtime deletes an owned sandbox when a run ends; only an
  // interrupted run's live sandbox is worth a serialized state.
  canPersistOwnedSessionState(): boolean {
    return false;
  }

  async serializeSessionState(state: AirlockSandboxSessionState): Promise<Record<string, unknown>> {
    return {
      sandboxId: state.sandboxId,
      environment: serializeRuntimeEnvironmentForPersistence(state.manifest, state.environment ?? {}),
      ...(state.workspacePersistence ? { workspacePersistence: state.workspacePersistence } : {}),
      ...(state.snapshotProcesses !== undefined ? { snapshotProcesses: state.snapshotProcesses } : {}),
      ...(state.rootfs ? { rootfs: state.rootfs } : {}),
      ...(state.limits ? { limits: state.limits } : {}),
      ...(state.seccompProfile ? { seccompProfile: state.seccompProfile } : {}),
      ...(state.commandTimeoutMs ? { commandTimeoutMs: state.commandTimeoutMs } : {}),
    };
  }

  async deserializeSessionState(record: Record<string, unknown>): Promise<AirlockSandboxSessionState> {
    const sandboxId = record.sandboxId;
    if (typeof sandboxId !== 'string' || !ID_RE.test(sandboxId)) {
      throw new SandboxConfigurationError(`${PROVIDER}: session state has no valid sandboxId`, {
        provider: PROVIDER,
        sandboxId,
      });
    }
    // The runtime hands the manifest over as its persisted record.
    const raw = record.manifest;
    if (!(raw instanceof Manifest) && (typeof raw !== 'object' || raw === null)) {
      throw new SandboxConfigurationError(`${PROVIDER}: session state has no manifest`, { provider: PROVIDER });
    }
    const manifest = raw instanceof Manifest ? raw : deserializeManifest(raw as Record<string, unknown>);
    const optional = <T>(key: string, check: (v: unknown) => boolean): T | undefined => {
      const v = record[key];
      if (v === undefined || v === null) return undefined;
      if (!check(v)) {
        throw new SandboxConfigurationError(`${PROVIDER}: session state field ${key} is malformed`, {
          provider: PROVIDER,
          field: key,
        });
      }
      return v as T;
    };
    const isRecord = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
    const state: AirlockSandboxSessionState = {
      ...record,
      manifest,
      sandboxId,
      environment: deserializePersistedEnvironmentForRuntime(
        manifest,
        optional<Record<string, string>>('environment', isRecord),
        this.options.env,
      ),
      workspacePersistence: optional('workspacePersistence', (v) => v === 'tar' || v === 'snapshot'),
      snapshotProcesses: optional('snapshotProcesses', (v) => typeof v === 'boolean'),
      rootfs: optional('rootfs', (v) => typeof v === 'string'),
      limits: optional('limits', isRecord),
      seccompProfile: optional('seccompProfile', (v) => typeof v === 'string'),
      commandTimeoutMs: optional('commandTimeoutMs', (v) => typeof v === 'number'),
    };
    return state;
  }

  /**
   * Reattach to the sandbox a state names.  One that is gone (destroyed,
   * or its host rebooted) is made again from the state's manifest, as the
   * hosted clients do; its workspace is then the manifest's, not the old one.
   */
  async resume(
    state: AirlockSandboxSessionState,
    options: SandboxClientResumeOptions<AirlockSandboxClientOptions> = {},
  ): Promise<AirlockSandboxSession> {
    const merged = { ...this.options, ...options.clientOptions };
    const api = this.api(merged);
    const archiveLimits = options.archiveLimits ?? merged.archiveLimits;
    try {
      const found = await api.inspect(state.sandboxId);
      if (found.state === 'running') {
        return new AirlockSandboxSession({ api, state, archiveLimits });
      }
      await api.delete(state.sandboxId).catch(() => undefined);
    } catch (e) {
      if (!(e instanceof AirlockApiError && e.status === 404)) throw e;
    }
    const fresh = await this.create(
      { manifest: state.manifest, archiveLimits },
      {
        ...merged,
        env: { ...(merged.env ?? {}), ...state.environment },
        rootfs: state.rootfs ?? merged.rootfs,
        limits: state.limits ?? merged.limits,
        seccompProfile: state.seccompProfile ?? merged.seccompProfile,
        workspacePersistence: state.workspacePersistence ?? merged.workspacePersistence,
        snapshotProcesses: state.snapshotProcesses ?? merged.snapshotProcesses,
      },
    );
    return fresh;
  }
}

function validateOptions(o: AirlockSandboxClientOptions): void {
  const bad = (field: string, why: string) => {
    throw new SandboxConfigurationError(`${PROVIDER}: option ${field} ${why}`, { provider: PROVIDER, field });
  };
  if (o.socketPath !== undefined && (typeof o.socketPath !== 'string' || o.socketPath === '')) bad('socketPath', 'must be a path');
  if (o.rootfs !== undefined && (typeof o.rootfs !== 'string' || !o.rootfs.startsWith('/'))) bad('rootfs', 'must be an absolute path');
  if (o.workspacePersistence !== undefined && o.workspacePersistence !== 'tar' && o.workspacePersistence !== 'snapshot') {
    bad('workspacePersistence', 'must be "tar" or "snapshot"');
  }
  for (const k of ['commandTimeoutMs', 'requestTimeoutMs'] as const) {
    const v = o[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) bad(k, 'must be a non-negative integer');
  }
  if (
    o.exposedPorts !== undefined &&
    (!Array.isArray(o.exposedPorts) || o.exposedPorts.some((p) => !Number.isInteger(p) || p < 1 || p > 65535))
  ) {
    bad('exposedPorts', 'must be an array of ports (1..65535)');
  }
  if (o.env !== undefined && (typeof o.env !== 'object' || Object.values(o.env).some((v) => typeof v !== 'string'))) {
    bad('env', 'must map names to strings');
  }
}
